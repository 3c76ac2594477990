// A fit's progress report after each step: where it is in its phases, the loss, the
// learning rate, the speed in voxels per second and the time left.
import type { Progress } from './options';
import type { Plan } from './plan';

export class ProgressMeter {
  private readonly startedAt = Date.now();
  private voxels = 0;

  /** startStep: the steps of the plan already done when this fit (or resume) began. */
  constructor(private readonly totalSteps: number, private readonly startStep: number, private readonly phases: number) {}

  /** The report after a step of `plan`: done steps of the whole plan, stepInPhase of the phase. */
  after(plan: Plan, done: number, stepInPhase: number, step: { loss: number; lr: number; gradNorm: number }): Progress {
    this.voxels += plan.batchSize * plan.size[0] * plan.size[1] * plan.size[2];
    const elapsed = (Date.now() - this.startedAt) / 1000;
    return {
      phase: plan.index + 1, phases: this.phases, phaseName: plan.name,
      epoch: Math.floor(stepInPhase / plan.stepsPerEpoch), epochs: Math.ceil(plan.steps / plan.stepsPerEpoch),
      step: done, totalSteps: this.totalSteps, loss: step.loss, lr: step.lr, batchSize: plan.batchSize, gradNorm: step.gradNorm,
      voxelsPerSecond: this.voxels / Math.max(elapsed, 1e-9), etaSeconds: ((this.totalSteps - done) * elapsed) / Math.max(done - this.startStep, 1),
    };
  }
}
