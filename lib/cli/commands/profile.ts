// segvol profile: per-op times of one forward + backward pass of the default
// family's profiled network.
import type { Command } from 'commander';
import { GradientTape } from '../../autograd/tape';
import { formatProfile, profile } from '../../core/profile';
import { Tensor, type Device } from '../../core/tensor';
import { families } from '../../models';
import { addOptions, deviceOption, optionKey } from '../context';

export function registerProfile(program: Command): void {
  const profiled = families.find((f) => f.profile)!.profile!;
  const command = program.command('profile').description(`time one forward + backward pass of ${profiled.description}, per native op`);
  addOptions(command, profiled.options);
  command.option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .action(async (o: Record<string, unknown> & { device: Device }) => {
      const values = Object.fromEntries(profiled.options.map((opt) => [optionKey(opt.flags), o[optionKey(opt.flags)]]));
      const { model: built, size } = profiled.build(values);
      const model = built.to(o.device);
      const x = Tensor.full(size, 0.5, { device: o.device });
      const run = async () => {
        const tape = new GradientTape();
        tape.watch(x);
        const y = await tape.record(() => model.forward(x, { training: true }));
        const grads = await tape.backward(y, y);
        tape.dispose();
        for (const t of [y, ...grads.values()]) t.dispose();
      };
      await run();  // builds the oneDNN primitives / picks the cuDNN algorithms
      const { records } = await profile(run);
      console.log(`forward + backward on ${o.device}, input (${size.join(', ')}), ${model.paramCount().toLocaleString('en-US')} parameters`);
      console.log(formatProfile(records));
      model.dispose();
      x.dispose();
    });
}
