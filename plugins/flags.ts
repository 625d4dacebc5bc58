// The flags of the 20 most populous countries, each with its metadata.json (the "Fluent Python" example):
// `CN-China.gif`, its record in metadata.jsonl carrying the country's metadata. A country whose files are
// missing (404) is reported in failures.jsonl; the others go on.
import { definePlugin, UsageError } from '../src/plugin/index.ts';

const POP20 = ['CN', 'IN', 'US', 'ID', 'BR', 'PK', 'NG', 'BD', 'RU', 'JP', 'MX', 'PH', 'VN', 'ET', 'EG', 'DE', 'IR', 'TR', 'CD', 'FR'];

interface CountryMetadata {
  country?: unknown;
  [key: string]: unknown;
}

export default definePlugin({
  name: 'flags',
  description: 'Flags of the 20 most populous countries with their metadata, saved as CN-China.gif (flupy.org)',
  options: {
    codes: { type: 'string[]', default: POP20, placeholder: 'CC,CC', help: 'country codes, comma or space separated' },
    baseUrl: { type: 'string', default: 'http://flupy.org/data/flags', placeholder: 'URL', help: 'where {cc}/metadata.json and {cc}/{cc}.gif are' },
  },

  start({ codes, baseUrl }) {
    const base = baseUrl.replace(/\/+$/, '');
    const unique = [...new Set(codes.map((cc) => cc.toUpperCase()))];
    const bad = unique.filter((cc) => !/^[A-Z0-9]{2,3}$/.test(cc));
    if (bad.length > 0) throw new UsageError(`Expected country codes like CN or US, got ${bad.map((cc) => JSON.stringify(cc)).join(', ')}`);
    return unique.map((cc) => ({ url: `${base}/${cc.toLowerCase()}/metadata.json`, label: 'country', userData: { cc } }));
  },

  handlers: {
    country({ request, json, options }) {
      const cc = String(request.userData['cc']);
      const metadata = json<CountryMetadata>();
      if (typeof metadata !== 'object' || metadata === null || typeof metadata.country !== 'string' || !metadata.country.trim()) {
        throw new Error(`${request.url} has no "country" name`);
      }
      // As in the original: spaces become underscores (and a slash could not be part of a file name).
      const country = metadata.country.trim().replace(/[\s/\\]+/g, '_');
      const lc = cc.toLowerCase();
      return {
        images: [{ url: `${options.baseUrl.replace(/\/+$/, '')}/${lc}/${lc}.gif`, name: `${cc}-${country}.gif`, metadata }],
      };
    },
  },
});
