import { UsageError } from '../errors.ts';
import { CLI_FLAGS } from '../cli/options.ts';
import { parseNameTemplate } from '../core/naming.ts';
import type { AnyPlugin, OptionSpec, OptionSpecs } from './types.ts';

/** Flags imgdl keeps for itself (those of `imgdl get` and `imgdl run`, and --version); a plugin option cannot take these names. */
export const RESERVED_FLAGS: readonly string[] = [...CLI_FLAGS, 'version'];

const OPTION_NAME = /^[a-z][a-zA-Z0-9]*$/;
const TYPES = new Set(['string', 'number', 'boolean', 'string[]']);

/** `baseUrl` → `base-url` (the command-line flag of an option). */
export function flagName(option: string): string {
  return option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Checks that a loaded module is a usable plugin; throws UsageError saying what is wrong. */
export function validatePlugin(value: unknown, source: string): AnyPlugin {
  const fail = (why: string): never => {
    throw new UsageError(`${source} is not a valid imgdl plugin: ${why} (a plugin file is \`export default definePlugin({...})\`)`);
  };
  if (typeof value !== 'object' || value === null) return fail('no default export object');
  const p = value as Partial<AnyPlugin>;
  if (typeof p.name !== 'string' || !/^[a-z0-9][a-z0-9_-]*$/i.test(p.name)) return fail('`name` must be a word (letters, digits, - and _)');
  if (typeof p.description !== 'string' || !p.description.trim()) return fail('`description` must be a non-empty string');
  if (typeof p.start !== 'function') return fail('`start` must be a function');
  if (typeof p.handlers !== 'object' || p.handlers === null || Object.keys(p.handlers).length === 0) return fail('`handlers` must be an object of functions by label');
  for (const [label, handler] of Object.entries(p.handlers)) {
    if (typeof handler !== 'function') fail(`handler ${JSON.stringify(label)} is not a function`);
    if (label.startsWith('__')) fail(`label ${JSON.stringify(label)}: labels starting with __ are the core's`);
  }
  const options: OptionSpecs = p.options ?? {};
  if (typeof options !== 'object' || options === null) return fail('`options` must be an object');
  let positional = 0;
  for (const [name, spec] of Object.entries(options)) {
    const where = `option ${JSON.stringify(name)}`;
    if (!OPTION_NAME.test(name)) fail(`${where}: names are camelCase words (baseUrl is --base-url)`);
    if (RESERVED_FLAGS.includes(flagName(name))) fail(`${where}: --${flagName(name)} is an imgdl run flag`);
    if (typeof spec !== 'object' || spec === null || !TYPES.has(spec.type)) fail(`${where}: \`type\` must be one of ${[...TYPES].join(', ')}`);
    if (typeof spec.help !== 'string' || !spec.help.trim()) fail(`${where}: \`help\` text is missing`);
    if (spec.type === 'string[]' && spec.positional) positional++;
    if (spec.default !== undefined) {
      try {
        coerce(name, spec, spec.default);
      } catch (error) {
        fail(`${where}: bad default: ${(error as Error).message}`);
      }
    }
  }
  if (positional > 1) fail('at most one option can take the positional arguments');
  if (p.http !== undefined) {
    const h = p.http as Record<string, unknown>;
    if (typeof h !== 'object' || h === null) fail('`http` must be an object');
    const known = ['headers', 'cookies', 'imageReferer', 'perHost', 'rate', 'acceptStatus'];
    for (const key of Object.keys(h)) if (!known.includes(key)) fail(`\`http.${key}\` is not a setting (settings: ${known.join(', ')})`);
    const strings = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
    if (h['headers'] !== undefined && !strings(h['headers'])) fail('`http.headers` must be an object of strings');
    if (h['cookies'] !== undefined && (!strings(h['cookies']) || !Object.keys(h['cookies'] as object).every((u) => URL.canParse(u)))) fail('`http.cookies` must be { url: "name=value; …" }');
    if (h['imageReferer'] !== undefined && typeof h['imageReferer'] !== 'boolean') fail('`http.imageReferer` must be a boolean');
    if (h['perHost'] !== undefined && !(Number.isInteger(h['perHost']) && (h['perHost'] as number) >= 1)) fail('`http.perHost` must be an integer ≥ 1');
    if (h['rate'] !== undefined && !(typeof h['rate'] === 'number' && h['rate'] > 0)) fail('`http.rate` must be a number > 0');
    if (h['acceptStatus'] !== undefined && !(Array.isArray(h['acceptStatus']) && h['acceptStatus'].every((n) => Number.isInteger(n) && n >= 100 && n <= 599))) fail('`http.acceptStatus` must be a list of HTTP statuses');
  }
  if (p.nameTemplate !== undefined) {
    if (typeof p.nameTemplate !== 'string') fail('`nameTemplate` must be a string');
    try {
      parseNameTemplate(p.nameTemplate);
    } catch (error) {
      fail(`\`nameTemplate\`: ${(error as Error).message}`);
    }
  }
  if (p.limits !== undefined) {
    if (typeof p.limits !== 'object' || p.limits === null) fail('`limits` must be { maxPages?, maxDepth? }');
    for (const [key, min] of [['maxPages', 1], ['maxDepth', 0]] as const) {
      const v = p.limits[key];
      if (v !== undefined && !(Number.isInteger(v) && v >= min)) fail(`\`limits.${key}\` must be an integer ≥ ${min}`);
    }
  }
  return value as AnyPlugin;
}

/** The option that takes the positional arguments, if any. */
export function positionalOption(plugin: AnyPlugin): string | undefined {
  return Object.entries((plugin.options ?? {}) as OptionSpecs).find(([, s]) => s.type === 'string[]' && s.positional)?.[0];
}

/**
 * Validates the options given to a plugin (from the command line as strings, or from code as values) and fills
 * in defaults. Unknown names, wrong types and missing required options are usage errors.
 */
export function resolvePluginOptions(plugin: AnyPlugin, given: Record<string, unknown> = {}): Record<string, unknown> {
  const specs: OptionSpecs = plugin.options ?? {};
  if (typeof given !== 'object' || given === null) throw new UsageError('Expected plugin options to be an object');
  for (const key of Object.keys(given)) {
    if (!Object.hasOwn(specs, key)) {
      const known = Object.keys(specs);
      throw new UsageError(`The ${plugin.name} plugin has no option \`${key}\`; its options: ${known.length ? known.join(', ') : 'none'}`);
    }
  }
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const raw = given[name];
    let value = raw === undefined ? undefined : coerce(name, spec, raw);
    if (value === undefined && spec.default !== undefined) value = spec.type === 'string[]' ? [...spec.default] : spec.default;
    if (value === undefined && spec.type === 'boolean') value = false;
    if (value === undefined && spec.type === 'string[]') value = [];
    if (spec.required && (value === undefined || (Array.isArray(value) && value.length === 0))) {
      throw new UsageError(`The ${plugin.name} plugin needs ${describe(name, spec)}: ${spec.help}`);
    }
    values[name] = value;
  }
  return values;
}

function describe(name: string, spec: OptionSpec): string {
  return spec.type === 'string[]' && spec.positional ? `${spec.placeholder ?? name} (as arguments)` : `--${flagName(name)}`;
}

function coerce(name: string, spec: OptionSpec, raw: unknown): unknown {
  const label = `\`${flagName(name)}\``;
  switch (spec.type) {
    case 'string': {
      if (typeof raw !== 'string') throw new UsageError(`Expected ${label} to be a string, got ${JSON.stringify(raw)}`);
      if (spec.choices && !spec.choices.includes(raw)) throw new UsageError(`Expected ${label} to be one of ${spec.choices.join(', ')}, got ${JSON.stringify(raw)}`);
      return raw;
    }
    case 'number': {
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
      const kind = spec.integer ? 'an integer' : 'a number';
      const range = spec.min !== undefined && spec.max !== undefined ? ` from ${spec.min} to ${spec.max}` : spec.min !== undefined ? ` ≥ ${spec.min}` : spec.max !== undefined ? ` ≤ ${spec.max}` : '';
      if (typeof n !== 'number' || !Number.isFinite(n) || (spec.integer && !Number.isInteger(n)) || (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        throw new UsageError(`Expected ${label} to be ${kind}${range}, got ${JSON.stringify(raw)}`);
      }
      return n;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === 'false') return raw === 'true';
      throw new UsageError(`Expected ${label} to be true or false, got ${JSON.stringify(raw)}`);
    }
    case 'string[]': {
      const list = typeof raw === 'string' ? [raw] : raw;
      if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) throw new UsageError(`Expected ${label} to be a list of strings, got ${JSON.stringify(raw)}`);
      // Positional values (URLs) are taken whole; flag values may pack several: `--codes CN,US` or `--codes "CN US"`.
      return spec.positional ? [...list] : list.flatMap((v) => v.split(/[\s,]+/)).filter(Boolean);
    }
  }
}

/** The "Plugin options" part of `imgdl run <plugin> --help`. */
export function optionsHelp(plugin: AnyPlugin): string[] {
  const rows: Array<[string, string]> = [];
  for (const [name, spec] of Object.entries((plugin.options ?? {}) as OptionSpecs)) {
    const placeholder = spec.placeholder ?? (spec.type === 'number' ? 'N' : spec.type === 'string[]' ? 'LIST' : 'VALUE');
    const left = spec.type === 'string[]' && spec.positional
      ? `${spec.placeholder ?? name.toUpperCase()}...`
      : spec.type === 'boolean' ? `--${flagName(name)}` : `--${flagName(name)} ${placeholder}`;
    const notes: string[] = [];
    if (spec.required) notes.push('required');
    if (spec.type === 'string' && spec.choices) notes.push(`one of ${spec.choices.join(', ')}`);
    if (spec.default !== undefined && !(spec.type === 'boolean' && spec.default === false)) {
      notes.push(`default: ${Array.isArray(spec.default) ? spec.default.join(' ') : String(spec.default)}`);
    }
    rows.push([left, spec.help + (notes.length ? ` (${notes.join('; ')})` : '')]);
  }
  const width = Math.min(28, Math.max(0, ...rows.map(([l]) => l.length)));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`);
}
