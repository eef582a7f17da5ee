/**
 * The terminal side of the serial console, as QEMU's character mux does it (-nographic): input
 * passes to the guest, except the escape key Ctrl-A followed by
 *   x       quit the VM
 *   h / ?   print the key help
 *   b       send a break to the guest's serial line
 *   Ctrl-A  send one Ctrl-A to the guest
 * Any other key after Ctrl-A is dropped. A pure state machine over bytes: the CLI feeds it
 * stdin chunks (in raw mode on a TTY) and acts on the events.
 */

/** The escape key: Ctrl-A (0x01). */
export const CONSOLE_ESCAPE = 0x01;

export type ConsoleEvent =
  | { kind: "data"; bytes: Uint8Array }
  | { kind: "quit" }
  | { kind: "help" }
  | { kind: "break" };

export const CONSOLE_HELP = [
  "C-a x    exit tskvm",
  "C-a h    print this help",
  "C-a b    send a break",
  "C-a C-a  send C-a",
].join("\n");

export class ConsoleEscape {
  private afterEscape = false;

  /** Split a chunk of terminal input into guest data and escape commands, in order. */
  feed(chunk: Uint8Array): ConsoleEvent[] {
    const events: ConsoleEvent[] = [];
    let start = 0;
    const flush = (end: number) => {
      if (end > start) events.push({ kind: "data", bytes: chunk.slice(start, end) });
    };
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.afterEscape) {
        this.afterEscape = false;
        start = i + 1;
        switch (b) {
          case CONSOLE_ESCAPE:
            start = i; // the second Ctrl-A goes to the guest
            break;
          case 0x78: // x
            events.push({ kind: "quit" });
            break;
          case 0x68: // h
          case 0x3f: // ?
            events.push({ kind: "help" });
            break;
          case 0x62: // b
            events.push({ kind: "break" });
            break;
        }
        continue;
      }
      if (b === CONSOLE_ESCAPE) {
        flush(i);
        this.afterEscape = true;
        start = i + 1;
      }
    }
    if (!this.afterEscape) flush(chunk.length);
    return events;
  }
}
