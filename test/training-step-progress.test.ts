/**
 * StepProgress, the labelled progress of long steps on stderr: driven through its hooks as the
 * loops call them (Keras's callback tests do the same), on a stream that is not a terminal, where
 * it writes a start and an end line per loop and nothing under quiet.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StepProgress } from '../src/training/index.js';
import { setQuiet } from '../src/util/log.js';

function pipe(): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const stream = {
    isTTY: false,
    write(chunk: string) {
      out += chunk;
      return true;
    },
  } as unknown as NodeJS.WriteStream;
  return { stream, text: () => out };
}

test('predict phase: a start and an end line over the batches', () => {
  const { stream, text } = pipe();
  const progress = new StepProgress({ label: 'evaluate', stream });
  progress.setParams({ steps: 3 });
  progress.onPredictBegin();
  for (let b = 0; b < 3; b++) progress.onPredictBatchEnd(b);
  progress.onPredictEnd();
  // The test hooks belong to another phase: nothing more.
  progress.onTestBegin();
  progress.onTestEnd();
  assert.equal(text(), 'evaluate: 0/3 batches\nevaluate: 3/3 batches\n');
});

test('firstEpoch phase: the first epoch and its validation pass, then nothing', () => {
  const { stream, text } = pipe();
  const progress = new StepProgress({
    label: 'epoch 1',
    phase: 'firstEpoch',
    validationSteps: 2,
    stream,
  });
  progress.setParams({ steps: 4, epochs: 3 });
  progress.onTrainBegin();
  for (let epoch = 0; epoch < 2; epoch++) {
    progress.onEpochBegin();
    for (let b = 0; b < 4; b++) progress.onTrainBatchEnd(b);
    progress.onTestBegin();
    for (let b = 0; b < 2; b++) progress.onTestBatchEnd(b);
    progress.onTestEnd();
    progress.onEpochEnd();
  }
  progress.onTrainEnd();
  assert.equal(
    text(),
    [
      'epoch 1: 0/4 batches',
      'epoch 1: 4/4 batches',
      'epoch 1 validation: 0/2 batches',
      'epoch 1 validation: 2/2 batches',
      '',
    ].join('\n'),
  );
});

test('nothing under quiet', () => {
  const { stream, text } = pipe();
  setQuiet(true);
  try {
    const progress = new StepProgress({ label: 'test', stream });
    progress.setParams({ steps: 2 });
    progress.onPredictBegin();
    progress.onPredictBatchEnd(0);
    progress.onPredictEnd();
  } finally {
    setQuiet(false);
  }
  assert.equal(text(), '');
});
