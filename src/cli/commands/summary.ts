import type { Command } from 'commander';
import { getApplication } from '../../applications/index.js';
import { countParams, summary } from '../../engine/index.js';
import { announceBackend, printJson } from '../output.js';
import { inputShape } from '../parse.js';

export function registerSummary(program: Command): void {
  program
    .command('summary')
    .description("print a backbone's layers and parameter counts (Keras's model.summary())")
    .argument(
      '<model>',
      'a Keras application: module or class name, any case (vgg16, MobileNetV2, mobilenet_v2)',
    )
    .option('--no-top', 'without the classifier (include_top=False)')
    .option('--input-shape <h,w,c>', 'input shape, e.g. 224,224,3', inputShape)
    .option('--json', 'one JSON line with totalParams, trainableParams, nonTrainableParams')
    .action(
      async (
        name: string,
        opts: { top: boolean; inputShape?: [number, number, number]; json?: boolean },
      ) => {
        const spec = getApplication(name);
        await announceBackend(Boolean(opts.json) || program.opts().quiet);
        const model = await spec.build({
          includeTop: opts.top,
          weights: null,
          ...(opts.inputShape ? { inputShape: opts.inputShape } : {}),
        });
        const counts = countParams(model);
        if (opts.json) printJson({ model: spec.className, ...counts });
        else summary(model);
      },
    );
}
