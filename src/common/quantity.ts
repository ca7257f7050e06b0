/**
 * Kubernetes resource quantities ('500m', '1.5Gi', '2e3') as numbers.
 *
 * Written by hand because @kubernetes/client-node does not export its parser,
 * and that parser rejects fractional values with binary suffixes ('1.5Gi').
 */

const decimalSuffixes: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

const binarySuffixes: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const quantityPattern = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$/;

/** Parses a quantity; throws RangeError on anything Kubernetes would not accept. */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = quantityPattern.exec(q.trim());
  if (!m) throw new RangeError(`not a Kubernetes quantity: '${q}'`);
  const base = Number(m[1]);
  if (m[2]) return Number(`${m[1]}${m[2]}`);
  const suffix = m[3] ?? '';
  const factor = binarySuffixes[suffix] ?? decimalSuffixes[suffix];
  if (factor === undefined) throw new RangeError(`unknown quantity suffix in '${q}'`);
  return base * factor;
}
