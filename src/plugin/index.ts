// Site plugins: one file each (`plugins/<name>.ts`, `export default definePlugin({...})`).
// A plugin returns what it found (pages to visit, images with a name and metadata); the core does the rest.
export { definePlugin } from './define.ts';
export { loadPlugin, listPlugins, builtinNames, isPluginPath, type PluginListing } from './loader.ts';
export { runPlugin, planPluginRun, type RunPluginOptions } from './run.ts';
export { UsageError } from '../errors.ts';
export type {
  AnyPlugin,
  BooleanOption,
  Handler,
  HandlerContext,
  HandlerResult,
  ImageRequest,
  ListOption,
  NumberOption,
  OptionSpec,
  OptionSpecs,
  OptionValues,
  Page,
  PageRequest,
  Plugin,
  PluginHttp,
  PluginLog,
  StartRequest,
  StringOption,
} from './types.ts';
