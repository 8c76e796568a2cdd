// Text streams line by line, for the test helpers that talk JSON lines (the ICE shells read their
// stdin with it; JsonPeer and watch() read their children's stdout and stderr).

/** The non-empty lines of `stream` as they arrive (a last line without a newline is not one yet). */
export async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.trim()) yield line;
    }
  }
}

/** Calls `onLine` for each line of `stream` until it ends. */
export async function eachLine(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  for await (const line of linesOf(stream)) onLine(line);
}
