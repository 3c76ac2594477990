// What a network family (lib/models/<family>/) declares: its presets and layers,
// and the pieces of the command line that are its own (its demo, its synthetic
// data, its config keys and paper settings for `segvol train`, inference and
// measures of its own). The registry (index.ts) merges them; the CLI, the
// model-file loader and `segvol train` ask it, so no generic code names a family.
import type { Device } from '../core/tensor';
import type { DataSource, Rotation, Size3, VolumeSampler } from '../data/samplers';
import type { StackConfig } from '../data/stacks';
import type { Volume } from '../io/volume_io';
import type { LayerBuilder } from '../nn/layer';
import type { ModelBase, ModelInfo } from '../nn/model';
import type { Phase, Precision, TrainerOptions } from '../training/options';
import type { Normalization } from '../core/normalization';

/** Reports progress of long work (the CLI draws a bar on a terminal, lines elsewhere). */
export interface ProgressSink {
  update(fraction: number, text: string): void;
  done(): void;
}

/** What the CLI hands a family's command pieces: where to print and how to show progress. */
export interface CliContext {
  /** A progress reporter labelled `label`. */
  progress(label: string): ProgressSink;
  /** A result line (stdout). */
  print(line: string): void;
  /** A note or warning (stderr). */
  note(line: string): void;
  /** Seconds as text ("1 min 5 s"). */
  duration(seconds: number): string;
}

/** A command-line option a family adds to a command. */
export interface CliOption {
  /** Commander flags: '--reference <file>', '--brats'. */
  flags: string;
  description: string;
  /** Parses the text (integers, lists); the raw string by default. */
  parse?: (value: string) => unknown;
  default?: unknown;
}

/** `segvol demo --model <name>`: trains on synthetic data and reports held-out scores. */
export interface FamilyDemo {
  /** The value of --model that picks it. */
  name: string;
  /** One line for the help text. */
  description: string;
  defaultSeconds: number;
  run(options: { seconds: number; out?: string; seed: number; precision?: Precision }, cli: CliContext): Promise<void>;
}

/** `segvol synth [flag]`: writes synthetic training data and a train.json for the family's network. */
export interface FamilySynth {
  /** The flag that picks it ('--brats'); the family without one is the default. */
  flag?: CliOption;
  /** Extra options ('--cases <n>'). */
  options?: readonly CliOption[];
  /** The volume size when --size is not given (d, h, w). */
  defaultSize: Size3;
  run(options: { out: string; size: Size3; seed: number } & Record<string, unknown>, cli: CliContext): void;
}

/** A train.json as the generic reader checked it (unknown keys refused by the merged schema). */
export type TrainConfigObject = Record<string, unknown> & {
  model: { preset: string } & Record<string, unknown>;
  data: Record<string, unknown>;
  validation?: Record<string, unknown>;
  settings?: string;
};

/** Training data loaded for `segvol train`, with what the model file should record about it. */
export interface LoadedTrainingData {
  data: DataSource;
  validation?: DataSource;
  info: ModelInfo;
}

/** The paper's settings a config asks for (settings: 'paper'), as defaults the config's own keys override. */
export interface PaperSettings {
  /** The paper's network: options of the config's preset, which the config's model keys override. */
  model?: Record<string, unknown>;
  trainer?: Pick<TrainerOptions, 'loss' | 'optimizer'>;
  /** Phases, when the paper trains in several (they replace the config's single phase). */
  phases?: Phase[];
  /** The input window, or the output window (a config's size or outputSize replaces either). */
  size?: Size3;
  outputSize?: Size3;
  /** Data defaults: normalisation and augmentation. */
  normalize?: Normalization;
  flip?: { z?: boolean; y?: boolean; x?: boolean };
  rotate?: boolean;
  rotation?: Rotation;
  /** Steps when the config gives no steps, epochs, phases or stages (the paper's update count). */
  steps?: number;
}

/** A stage run before the main training of a config (recursive training's first network and boundary maps). */
export interface TrainingPreparation {
  data: DataSource;
  validation?: DataSource;
  info: ModelInfo;
  /** Awaited after each step of the main fit, with the steps done and the fit's total (another model trained in between). */
  afterStep?(step: number, totalSteps: number): Promise<void>;
  /** Awaited after the main fit (the interleaved work finished and saved); aborted: the fit was stopped. */
  finish?(aborted: boolean): Promise<void>;
  /**
   * The model's inputs besides the image for a held-out volume, as of now (evaluation asks
   * after finish): a recursive model's boundary map from the first network's final weights.
   */
  inputsFor?(image: Float32Array, dims: readonly [number, number, number], what: string): Promise<Record<string, Float32Array>>;
}

/** A model trained in this run (by the context's train), trained on for more steps with the same trainer. */
export interface ContinuedTraining {
  /** Runs `steps` more steps of its training's last phase on the data given to continueTraining. */
  run(steps: number): Promise<void>;
  /** Steps it has had in all. */
  readonly steps: number;
  /** Writes its checkpoint where its config keeps one (model and optimizer state); does nothing otherwise. */
  save(): void;
  /** Its config's checkpoint path, if any. */
  readonly checkpoint: string | undefined;
}

/** The family's part of `segvol train`. */
export interface FamilyTraining {
  /** Keys of config.model for the family's presets (besides 'preset'). */
  modelKeys: readonly string[];
  /** Config keys the family adds, by schema path ('' for the top level, 'data', 'recursive.first'). */
  schema?: Readonly<Record<string, readonly string[]>>;
  /** Checks what the schema cannot (which keys go together), given the file's name. */
  check?(config: TrainConfigObject, source: string): void;
  /** The presets that have settings: 'paper'. */
  paperPresets?: readonly string[];
  /** settings: 'paper' for this preset; undefined if the family has no paper settings for it. */
  paperSettings?(config: TrainConfigObject): PaperSettings | undefined;
  /** What the preset trains with when neither the config nor its paper settings say (a loss on the targets it predicts). */
  defaults?(config: TrainConfigObject): Pick<TrainerOptions, 'loss' | 'optimizer'> | undefined;
  /** Loads the config's data when the family owns its form (data.brats); undefined otherwise. */
  loadData?(config: TrainConfigObject, baseDir: string, cli: CliContext): LoadedTrainingData | undefined;
  /**
   * Runs before the main fit (recursive training: trains or loads the first network, adds its
   * boundary maps to the data, starts the model from its shared layers).
   */
  prepare?(context: {
    config: TrainConfigObject; baseDir: string; model: ModelBase; loaded: LoadedTrainingData; device: Device; signal: AbortSignal;
    /** Trains another config as `segvol train` would (the first stage). */
    train(config: TrainConfigObject, label: string): Promise<ModelBase>;
    /** Loads a model file (any family's). */
    load(file: string): ModelBase;
    /** Reads more training stacks ({ volume, labels, mask?, normalize? }, checked), normalised and augmented as the config's data. */
    loadStacks(stacks: readonly StackConfig[], where: string): VolumeSampler[];
    /** Goes on training a model that train() returned, on other data (its trainer: optimizer state and draws go on). */
    continueTraining(model: ModelBase, data: DataSource): ContinuedTraining;
  }, cli: CliContext): Promise<TrainingPreparation | undefined>;
  /**
   * Trains the config's model with the family's own loop instead of the Trainer (a regime the
   * Trainer's phases do not express: the consistent ConvLSTM's epochs over sub-volumes with
   * every object). It writes the checkpoint (config.checkpoint.path) and what goes beside it.
   */
  fit?(context: FamilyFitContext, cli: CliContext): Promise<void>;
}

/** What a family's own training loop gets from `segvol train` (see FamilyTraining.fit). */
export interface FamilyFitContext {
  config: TrainConfigObject;
  baseDir: string;
  /** The config's model, built (on its device). */
  model: ModelBase;
  signal: AbortSignal;
  /** A checkpoint to go on from (--resume), and whether its optimizer state may be missing. */
  resume?: string;
  freshOptimizer?: boolean;
}

/** The family's part of `segvol predict`. */
export interface FamilyPredict {
  /** Options it adds ('--reference <file>'). */
  options?: readonly CliOption[];
  /** Reads an input only it understands (a BRATS case folder), or undefined; `input` says what it reads, for the help. */
  readInput?(path: string): Volume | undefined;
  input?: string;
  /** Predicts with its own models when they need their own inference (propagation); resolves true when it did. */
  run?(model: ModelBase, options: Record<string, unknown> & { in: string; out: string; window?: number[] }, cli: CliContext): Promise<boolean>;
}

/** A measure of `segvol evaluate` that belongs to a family (BRATS regions). */
export interface FamilyMeasure {
  /** Its name in --metrics, and its flag (--<name>). */
  name: string;
  description: string;
  /** Compares label volumes (class ids), not probabilities. */
  labelsOnly: boolean;
  compute(pred: Float32Array, truth: Float32Array): unknown;
  print(result: unknown, cli: CliContext): void;
  /** Scores a folder of predictions against a folder of cases (--pred and --truth folders), with the options it adds. */
  folders?: {
    options: readonly CliOption[];
    run(options: Record<string, unknown> & { pred: string; truth: string; json?: boolean }, cli: CliContext): void;
  };
}

/** `segvol split`: the cases of a data layout the family reads, split into k folds or a train/test hold-out. */
export interface FamilyCases {
  /** What the folder holds, for the help ('BRATS case folders'). */
  description: string;
  /** Writes the split (JSON) to options.out and prints what it did. */
  split(options: { cases: string; out: string; folds?: number; test?: number; seed: number; stratify: boolean }, cli: CliContext): void;
}

/** `segvol profile`: the network it times by default, and options to size it. */
export interface FamilyProfile {
  description: string;
  options: readonly CliOption[];
  build(options: Record<string, unknown>): { model: ModelBase; size: number[] };
}

export interface ModelFamily {
  /** The folder name (lib/models/<name>). */
  readonly name: string;
  /** The source paper, one line. */
  readonly title: string;
  /** Preset builders by name: model files record these names. */
  readonly presets: Readonly<Record<string, (options: never) => ModelBase>>;
  /** Layer builders of this family, by layer type (model files of layer lists and graphs name them). */
  readonly layers?: Readonly<Record<string, (options: never) => LayerBuilder>>;
  readonly demo?: FamilyDemo;
  readonly synth?: FamilySynth;
  readonly training?: FamilyTraining;
  readonly predict?: FamilyPredict;
  readonly measures?: readonly FamilyMeasure[];
  readonly cases?: FamilyCases;
  readonly profile?: FamilyProfile;
}
