// report.html: one self-contained page (no script, no network: everything inline, images by relative path) that
// shows a run at a glance: its counts, a throughput chart, its failures by code and by host with example URLs, and a
// contact sheet of the saved images. Every URL, file name, caption and message is hostile input: all of it is
// escaped, and the page's Content-Security-Policy allows nothing but inline styles and images from the folder.
import bytes from 'bytes';
import { REASON_CODES, type ReasonCode } from '../errors.ts';
import type { RunStats } from '../core/stats.ts';

/** One thumbnail of the contact sheet. */
export interface Thumb {
  /** The file, relative to the output folder (where report.html is). */
  file: string;
  url: string;
  caption?: string;
  width: number | null;
  height: number | null;
}

export interface ReportInput {
  stats: RunStats;
  /** The saved images shown (at most `limit` of them). */
  thumbs: readonly Thumb[];
  /** Saved images of the run in all (the sheet says when it shows only the first ones). */
  saved: number;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text and attribute values, escaped for HTML. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** A relative path as a URL reference: each segment percent-encoded (`#`, `?`, `%`, spaces… are file name characters). */
export function relativeHref(file: string): string {
  return file.split('/').map(encodeURIComponent).join('/');
}

const fmtBytes = (n: number): string => bytes.format(n, { unitSeparator: ' ', decimalPlaces: 1 }) ?? `${n} B`;
// Grouped by thousands with commas, as toLocaleString('en-US') would, without it: its first call sets up ICU's number
// formatting, ~35 ms of a one-image run's 0.5 s.
const fmtInt = (n: number): string => (Number.isInteger(n) ? String(n).replace(/\B(?=(\d{3})+$)/g, ',') : n.toLocaleString('en-US'));

/** Images per contact-sheet section: sections off screen are skipped by layout and paint (content-visibility). */
const SECTION = 120;

const STYLE = `
:root { color-scheme: light dark; --fg: #1d1d1f; --muted: #6e6e73; --bg: #fff; --card: #f5f5f7; --line: #d2d2d7; --ok: #2e7d32; --bad: #c62828; --acc: #1565c0; }
@media (prefers-color-scheme: dark) { :root { --fg: #f5f5f7; --muted: #a1a1a6; --bg: #1d1d1f; --card: #2c2c2e; --line: #3a3a3c; --ok: #66bb6a; --bad: #ef5350; --acc: #64b5f6; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1280px; padding: 24px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 4px; word-break: break-all; } h2 { font-size: 17px; margin: 32px 0 10px; }
.muted { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; margin: 16px 0; }
.card { background: var(--card); border-radius: 10px; padding: 10px 12px; } .card b { display: block; font-size: 20px; }
.ok { color: var(--ok); } .bad { color: var(--bad); }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-size: 12px; word-break: break-all; } ul.ex { margin: 0; padding-left: 16px; }
svg.chart { width: 100%; height: auto; background: var(--card); border-radius: 10px; }
svg.chart text { fill: var(--muted); font-size: 11px; }
.sheet section { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 8px; margin-bottom: 8px;
  content-visibility: auto; contain-intrinsic-size: auto 1400px; }
figure { margin: 0; background: var(--card); border-radius: 8px; overflow: hidden; }
figure a { display: block; aspect-ratio: 1; } figure img { width: 100%; height: 100%; object-fit: contain; display: block; }
figcaption { padding: 4px 6px; font-size: 11px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
`;

/** The page. */
export function renderReport({ stats, thumbs, saved }: ReportInput): string {
  const { images } = stats;
  const rate = stats.successRate === null ? '–' : `${(stats.successRate * 100).toFixed(1)} %`;
  const parts: string[] = [];
  parts.push(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data: blob:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>imgdl report: ${escapeHtml(stats.run)}</title>
<style>${STYLE}</style></head><body>
<h1>${escapeHtml(stats.run)}</h1>
<div class="muted">imgdl run report, written ${escapeHtml(stats.generatedAt)}. The numbers are in <code>stats.json</code>, every record in <code>metadata.jsonl</code>, every failure in <code>failures.jsonl</code>.</div>
<div class="cards">
<div class="card"><b class="ok">${fmtInt(images.saved)}</b>saved</div>
<div class="card"><b class="bad">${fmtInt(images.failed)}</b>failed</div>
<div class="card"><b>${fmtInt(images.pending)}</b>pending</div>
<div class="card"><b>${rate}</b>success rate</div>
<div class="card"><b>${escapeHtml(fmtBytes(stats.bytes))}</b>saved in all</div>
<div class="card"><b>${stats.session.imagesPerSecond}</b>images/s (last session: ${fmtInt(stats.session.downloaded)} in ${stats.session.seconds} s)</div>
</div>`);
  parts.push(`<h2>Throughput</h2>`, chart(stats));
  parts.push(failuresByCode(stats), failuresByHost(stats));
  parts.push(`<h2 id="images">Images</h2>`);
  if (thumbs.length === 0) parts.push(`<p class="muted">No image saved yet.</p>`);
  else if (thumbs.length < saved) parts.push(`<p class="muted">The first ${fmtInt(thumbs.length)} of ${fmtInt(saved)} saved images; <code>metadata.jsonl</code> lists every one.</p>`);
  parts.push(`<div class="sheet">`);
  for (let i = 0; i < thumbs.length; i += SECTION) {
    parts.push('<section>');
    for (const t of thumbs.slice(i, i + SECTION)) {
      const href = escapeHtml(relativeHref(t.file));
      const label = t.caption ?? t.file;
      const title = `${t.file}${t.width && t.height ? ` (${t.width}×${t.height})` : ''}\n${t.url}${t.caption === undefined ? '' : `\n${t.caption}`}`;
      parts.push(
        `<figure><a href="${href}"><img src="${href}" loading="lazy" decoding="async" alt="${escapeHtml(label)}"${t.width && t.height ? ` width="${t.width}" height="${t.height}"` : ''}></a>` +
          `<figcaption title="${escapeHtml(title)}">${escapeHtml(label)}</figcaption></figure>`,
      );
    }
    parts.push('</section>');
  }
  parts.push('</div></body></html>\n');
  return parts.join('\n');
}

function examples(urls: readonly string[] | undefined): string {
  if (!urls || urls.length === 0) return '';
  return `<ul class="ex">${urls.map((u) => `<li><code>${escapeHtml(u === '' ? '(empty)' : u)}</code></li>`).join('')}</ul>`;
}

function failuresByCode(stats: RunStats): string {
  const rows = (Object.entries(stats.failures.byCode) as Array<[ReasonCode, number]>).sort((a, b) => b[1] - a[1]);
  if (rows.length === 0) return `<h2>Failures</h2><p class="muted">None.</p>`;
  return `<h2>Failures by code</h2><table><thead><tr><th>code</th><th class="n">failures</th><th>meaning</th><th>examples</th></tr></thead><tbody>
${rows.map(([code, n]) => `<tr><td><code>${escapeHtml(code)}</code></td><td class="n">${fmtInt(n)}</td><td>${escapeHtml(REASON_CODES[code] ?? '')}</td><td>${examples(stats.failures.examples[code])}</td></tr>`).join('\n')}
</tbody></table>`;
}

function failuresByHost(stats: RunStats): string {
  const { byHost, hosts } = stats.failures;
  if (byHost.length === 0) return '';
  const more = hosts > byHost.length ? `<p class="muted">The ${byHost.length} hosts with most failures, of ${fmtInt(hosts)}.</p>` : '';
  return `<h2>Failures by host</h2>${more}<table><thead><tr><th>host</th><th class="n">failed</th><th class="n">saved</th><th>codes</th><th>examples</th></tr></thead><tbody>
${byHost
  .map((h) => {
    const codes = Object.entries(h.byCode).sort((a, b) => b[1] - a[1]).map(([c, n]) => `<code>${escapeHtml(c)}</code> ${fmtInt(n)}`).join(', ');
    return `<tr><td><code>${escapeHtml(h.host)}</code></td><td class="n">${fmtInt(h.failed)}</td><td class="n">${fmtInt(h.saved)}</td><td>${codes}</td><td>${examples(h.examples)}</td></tr>`;
  })
  .join('\n')}
</tbody></table>`;
}

/** Images per second (bars: saved, and failed on top) and MB/s (a line) over the run, as inline SVG. */
function chart(stats: RunStats): string {
  const { buckets, bucketSeconds, start } = stats.throughput;
  if (buckets.length === 0 || start === null) return `<p class="muted">Nothing settled yet.</p>`;
  const W = 960;
  const H = 260;
  const left = 56;
  const right = 64;
  const top = 16;
  const bottom = 36;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const end = buckets[buckets.length - 1]!.t + bucketSeconds;
  const x = (t: number): number => left + (t / end) * plotW;
  const perSecond = (n: number): number => n / bucketSeconds;
  const maxRate = Math.max(...buckets.map((b) => perSecond(b.images + b.failed)), 1e-9);
  const maxMBs = Math.max(...buckets.map((b) => perSecond(b.bytes) / 1e6), 1e-9);
  const y = (v: number, max: number): number => top + plotH - (v / max) * plotH;
  const barW = Math.max(1, (bucketSeconds / end) * plotW - (buckets.length < 120 ? 1 : 0));
  const bars: string[] = [];
  for (const b of buckets) {
    const okTop = y(perSecond(b.images), maxRate);
    const allTop = y(perSecond(b.images + b.failed), maxRate);
    const bx = x(b.t).toFixed(1);
    const tip = `${b.t}–${b.t + bucketSeconds} s: ${b.images} saved, ${b.failed} failed, ${fmtBytes(b.bytes)}`;
    bars.push(`<g><title>${escapeHtml(tip)}</title>` +
      (b.images > 0 ? `<rect x="${bx}" y="${okTop.toFixed(1)}" width="${barW.toFixed(1)}" height="${(top + plotH - okTop).toFixed(1)}" fill="var(--ok)" opacity="0.75"/>` : '') +
      (b.failed > 0 ? `<rect x="${bx}" y="${allTop.toFixed(1)}" width="${barW.toFixed(1)}" height="${(okTop - allTop).toFixed(1)}" fill="var(--bad)" opacity="0.75"/>` : '') +
      '</g>');
  }
  const line = buckets.map((b) => `${x(b.t + bucketSeconds / 2).toFixed(1)},${y(perSecond(b.bytes) / 1e6, maxMBs).toFixed(1)}`).join(' ');
  const startTime = new Date(start).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="images per second and megabytes per second over the run">
<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="var(--line)"/>
${bars.join('')}
<polyline points="${line}" fill="none" stroke="var(--acc)" stroke-width="2"/>
<text x="${left - 6}" y="${top + 10}" text-anchor="end">${fmtRate(maxRate)}/s</text><text x="${left - 6}" y="${top + plotH}" text-anchor="end">0</text>
<text x="${left + plotW + 6}" y="${top + 10}">${escapeHtml(fmtBytes(maxMBs * 1e6))}/s</text>
<text x="${left}" y="${H - 12}">${escapeHtml(startTime)}</text><text x="${left + plotW}" y="${H - 12}" text-anchor="end">+${fmtDuration(end)} (buckets of ${fmtDuration(bucketSeconds)})</text>
<text x="${left + plotW / 2}" y="${H - 12}" text-anchor="middle"><tspan fill="var(--ok)">■</tspan> saved/s <tspan fill="var(--bad)">■</tspan> failed/s <tspan fill="var(--acc)">━</tspan> bytes/s</text>
</svg>`;
}

function fmtRate(n: number): string {
  return n >= 100 ? Math.round(n).toString() : n.toFixed(n >= 10 ? 1 : 2);
}

function fmtDuration(s: number): string {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
