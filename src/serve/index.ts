/** Serving a trained run folder over HTTP: `serve`, the routes behind it, and its options. */
export { createServeApp, type ServeState } from './app.js';
export {
  isLoopbackHost,
  type ResolvedServeOptions,
  SERVE_DEFAULTS,
  type ServeOptions,
} from './options.js';
export { type ClassProbability, rankClasses } from './predictor.js';
export { type ServeHandle, serve } from './server.js';
