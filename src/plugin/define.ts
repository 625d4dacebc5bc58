import type { OptionSpecs, Plugin } from './types.ts';

/**
 * Declares a site plugin. It returns its argument unchanged: it exists so that TypeScript infers the
 * options' types from their declaration (`ctx.options.codes` is a `string[]`) and checks the labels.
 *
 * @example
 * export default definePlugin({
 *   name: 'flags',
 *   description: 'Flags of the most populous countries, with their metadata',
 *   options: { codes: { type: 'string[]', default: ['CN', 'IN'], help: 'country codes' } },
 *   start: ({ codes }) => codes.map((cc) => ({ url: `https://example.org/${cc}.json`, label: 'country' })),
 *   handlers: {
 *     country: ({ json }) => ({ images: [{ url: json<{ flag: string }>().flag, name: 'x.gif' }] }),
 *   },
 * });
 */
export function definePlugin<const O extends OptionSpecs = Record<never, never>, L extends string = string>(plugin: Plugin<O, L>): Plugin<O, L> {
  return plugin;
}
