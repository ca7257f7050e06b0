/** The pod controller lives in ./pods/ (record, decision step, effects, dependencies); this keeps the old import path. */
export { PodController, type PodControllerOptions } from './pods/controller.js';
export { podKey } from './pods/record.js';
