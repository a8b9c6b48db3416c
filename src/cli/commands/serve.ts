import { type Command, Option } from 'commander';
import { serve } from '../../serve/index.js';
import { info } from '../../util/log.js';
import { announceBackend, printJson } from '../output.js';
import { nonNegativeInteger, positiveInteger } from '../parse.js';

interface ServeFlags {
  port: number;
  host: string;
  top: number;
  token?: string;
  maxBody: number;
  maxBatch: number;
  maxQueue: number;
  timeout: number;
  json?: boolean;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve a model trained by `xfer train` over HTTP: POST /predict, a web page at /')
    .argument('<model-dir>', 'the --out folder of xfer train')
    .option('--port <n>', 'port to listen on (0 picks a free one)', nonNegativeInteger, 8080)
    .option('--host <address>', 'address to bind; anything but loopback needs --token', '127.0.0.1')
    .option('--top <k>', 'classes returned per image', positiveInteger, 5)
    .addOption(
      new Option(
        '--token <secret>',
        'require `Authorization: Bearer <secret>` on POST /predict',
      ).env('XFER_SERVE_TOKEN'),
    )
    .option('--max-body <bytes>', 'largest request body', positiveInteger, 10 * 1024 * 1024)
    .option('--max-batch <n>', 'most images per model.predict', positiveInteger, 16)
    .option('--max-queue <n>', 'most requests in progress before 503', positiveInteger, 64)
    .option('--timeout <ms>', 'longest a request may take', positiveInteger, 30_000)
    .option(
      '--json',
      'JSON lines on stdout for the lifecycle: listening (url, host, port, model, backend), draining, stopped',
    )
    .action(async (modelDir: string, opts: ServeFlags) => {
      const backend = await announceBackend(Boolean(opts.json) || program.opts().quiet);
      const server = await serve(modelDir, {
        port: opts.port,
        host: opts.host,
        top: opts.top,
        maxBodyBytes: opts.maxBody,
        maxBatchSize: opts.maxBatch,
        maxQueue: opts.maxQueue,
        requestTimeoutMs: opts.timeout,
        ...(opts.token !== undefined ? { token: opts.token } : {}),
      });
      // The address goes to stdout, always: scripts (and tests) read it to find a --port 0 server.
      if (opts.json) {
        const url = new URL(server.url);
        printJson({
          event: 'listening',
          url: server.url,
          host: opts.host,
          port: Number(url.port),
          model: modelDir,
          backend,
        });
      } else {
        process.stdout.write(`xfer: serving ${modelDir} on ${server.url}\n`);
      }
      // SIGTERM / SIGINT: in-flight requests finish, then the command returns and xfer exits 0.
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          if (opts.json) printJson({ event: 'draining', signal });
          else info(`xfer: ${signal}: finishing in-flight requests, then exiting`);
          void server.close().then(resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      if (opts.json) printJson({ event: 'stopped' });
    });
}
