// Helpers shared by the CLI commands.

/**
 * Prints a line of information (summary, hints) on stderr. Not console.error: Bun colours that red on a terminal,
 * which makes a summary look like an error.
 */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Kept as strings so that option validation (with its messages) happens in one place, resolveOptions. */
export function numberOrUndefined(value: string | undefined): number | undefined {
  return value === undefined ? undefined : (value as unknown as number);
}

/** First Ctrl-C / SIGTERM stops gracefully; a second one exits at once (the state stays consistent either way). */
export function onSignals(stop: AbortController, resume: () => string): () => void {
  const handler = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) {
      note(`\nimgdl: stopped at once. Resume with: ${resume()}`);
      process.exit(130);
    }
    note(`\nimgdl: ${signal}: stopping (again to quit at once)…`);
    stop.abort(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
