import cliProgress from 'cli-progress';
import bytes from 'bytes';
import type { Progress, RunHandle, Summary } from '../core/engine.ts';
import { REASON_CODES } from '../errors.ts';
import type { QueueProgress } from '../queue/coordinator.ts';
import { note } from './common.ts';

/** A progress bar on a terminal, a quiet line every few seconds otherwise. Both on stderr. */
export function showProgress(engine: RunHandle, stream: NodeJS.WriteStream = process.stderr): () => void {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: ' {bar} {value}/{total} | failed {failed} | {rate} img/s | {size} | ETA {eta_formatted}{hosts}',
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 200,
        fps: 8,
      },
      cliProgress.Presets.shades_classic,
    );
    const fields = () => {
      const p = engine.progress();
      return { done: p.done + p.failed, total: Math.max(p.total, 1), p };
    };
    const first = fields();
    bar.start(first.total, first.done, { failed: first.p.failed, rate: '0', size: '0B', hosts: '' });
    const timer = setInterval(() => {
      const { done, total, p } = fields();
      bar.setTotal(total);
      bar.update(done, { failed: p.failed, rate: rate(p.downloaded, p.elapsedMs), size: bytes.format(p.bytes) ?? '0B', hosts: backingOff(p, ' | ') });
    }, 125);
    return () => {
      clearInterval(timer);
      const { done, total, p } = fields();
      bar.setTotal(total);
      bar.update(done, { failed: p.failed, rate: rate(p.downloaded, p.elapsedMs), size: bytes.format(p.bytes) ?? '0B', hosts: backingOff(p, ' | ') });
      bar.stop();
    };
  }
  const timer = setInterval(() => {
    const p = engine.progress();
    stream.write(`imgdl: ${p.done + p.failed}/${p.total} handled, ${p.failed} failed, ${rate(p.downloaded, p.elapsedMs)} img/s${backingOff(p, ', ')}\n`);
  }, 5000);
  timer.unref();
  return () => clearInterval(timer);
}

/** `2 hosts backing off: a.com 4/host, b.com paused 12 s`, after `sep`; '' when none is. */
export function backingOff(p: Progress, sep: string): string {
  const b = p.backingOff;
  if (!b || b.count === 0) return '';
  const shown = b.hosts.map((h) => (h.pausedMs > 0 ? `${h.host} paused ${Math.ceil(h.pausedMs / 1000)} s` : `${h.host} at ${h.limit}`));
  const more = b.count > shown.length ? `, +${b.count - shown.length} more` : '';
  return `${sep}${b.count} ${b.count === 1 ? 'host' : 'hosts'} backing off: ${shown.join(', ')}${more}`;
}

function rate(count: number, ms: number): string {
  return ms > 0 ? (count / (ms / 1000)).toFixed(0) : '0';
}

/** The end-of-run summary for a person. */
export function formatSummary(s: Summary, cwd = process.cwd()): string {
  const rel = (p: string) => (p.startsWith(cwd + '/') ? p.slice(cwd.length + 1) : p);
  const lines = [
    `${s.interrupted ? 'Stopped' : 'Done'}: ${s.downloaded} downloaded, ${s.skipped} skipped (already there), ${s.failed} failed` +
      (s.pagesFailed ? `, ${s.pagesFailed} pages failed` : '') +
      (s.pending > 0 ? `, ${s.pending} pending` : '') +
      ` — ${bytes.format(s.bytes) ?? '0B'} in ${s.seconds.toFixed(1)} s (${s.imagesPerSecond} img/s)`,
    `Images and ${rel(s.metadataFile)} in ${rel(s.outDir)}/`,
  ];
  if (s.reportFile) lines.push(`Report: ${rel(s.reportFile)} (open it in a browser; the numbers are in ${rel(s.statsFile ?? 'stats.json')})`);
  else if (s.statsFile) lines.push(`Numbers: ${rel(s.statsFile)}`);
  if (s.hosts?.length) {
    lines.push('Hosts that backed off (429, 503, timeouts, resets), most first:');
    for (const h of s.hosts) {
      lines.push(`  ${h.host}: ${h.images} images, ${h.failed} failed, limit at the end ${h.limit} (lowest ${h.lowest}, lowered ${h.backoffs} times)`);
    }
  }
  if (s.pagesNotVisited) lines.push(`${s.pagesNotVisited} pages found were not visited (past --max-pages or --max-depth)`);
  if (s.retried) {
    const before = byCode(s.retried) || 'none';
    lines.push(`Retried failures: before ${before}; after ${byCode(s.failuresByCode) || 'none'}`);
  }
  if (s.failed > 0 || s.pagesFailed) {
    const codes = byCode(s.failuresByCode);
    lines.push(`Failures (${codes}) in ${rel(s.failuresFile)}`);
    for (const [code, n] of Object.entries(s.failuresByCode)) {
      if (n) lines.push(`  ${code}: ${REASON_CODES[code as keyof typeof REASON_CODES]}`);
    }
  }
  return lines.join('\n');
}

function byCode(counts: Partial<Record<string, number>>): string {
  return Object.entries(counts)
    .sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0))
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
}

/** A distributed run's progress (get or run with --queue): one line every 5 s on stderr (the whole run's counts, not this process's). */
export function queueReporting(): { onQueueProgress: (progress: QueueProgress) => void } {
  let last = 0;
  return {
    onQueueProgress: (p) => {
      if (Date.now() - last < 5000) return;
      last = Date.now();
      note(`${p.run}: shards ${p.shardsDone}/${p.shards} done${p.shardsFailed ? `, ${p.shardsFailed} failed` : ''}; images ${p.saved} saved, ${p.failed} failed of ${p.total}; ${p.workers} workers; ${(p.elapsedMs / 1000).toFixed(0)} s`);
    },
  };
}
