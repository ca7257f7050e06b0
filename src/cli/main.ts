#!/usr/bin/env node
/**
 * The aci-connector binary. Bad configuration ends the process with one line on
 * stderr and exit code 1.
 */
import { readFileSync } from 'node:fs';
import { buildProgram, type CliOptions } from './options.js';
import { errorMessage } from '../common/errors.js';

function packageVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'aci-connector' && pkg.version) return pkg.version;
    } catch {
      // try the next layout (built vs. source)
    }
  }
  return '0.0.0';
}

async function main(): Promise<void> {
  const version = packageVersion();
  const program = buildProgram(version);
  program.parse(process.argv);
  const opts = program.opts<CliOptions>();
  const { run, startupErrorMessage } = await import('./run.js');
  try {
    await run(opts, version);
  } catch (err) {
    process.stderr.write(`aci-connector: error: ${startupErrorMessage(err)}\n`);
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`aci-connector: error: ${errorMessage(err)}\n`);
  process.exit(1);
});
