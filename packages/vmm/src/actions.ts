/**
 * The control surface of a running VM: one union of actions, parsed separately from whatever
 * carries it (the CLI's monitor line, a JSON message, a JS call).
 */
import { ConfigError, parseSize } from "./config.js";

export type VmAction =
  | { kind: "pause" }
  | { kind: "resume" }
  /** Set the balloon target: how many bytes the guest should give back. */
  | { kind: "balloon"; bytes: number }
  /** Write a PNG of the framebuffer. */
  | { kind: "screenshot"; path: string }
  | { kind: "stop" };

export type VmActionKind = VmAction["kind"];
export const VM_ACTION_KINDS: readonly VmActionKind[] = ["pause", "resume", "balloon", "screenshot", "stop"];

/** An action that does not parse; `message` is one line. */
export class ActionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ActionError";
  }
}

function balloonBytes(v: unknown): number {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v) || v < 0 || v % 4096 !== 0)
      throw new ActionError(`balloon: ${v} is not a whole number of 4 KiB pages`);
    return v;
  }
  if (typeof v === "string") {
    try {
      return parseSize(v, "balloon");
    } catch (e) {
      if (e instanceof ConfigError) throw new ActionError(e.message);
      throw e;
    }
  }
  throw new ActionError("balloon: bytes must be a number or a size such as 128M");
}

/** Parse an action from a JSON-like value: `{ "kind": "balloon", "bytes": 134217728 }`. */
export function parseAction(input: unknown): VmAction {
  if (typeof input !== "object" || input === null || Array.isArray(input))
    throw new ActionError("an action is an object with a kind");
  const o = input as Record<string, unknown>;
  const allow = (keys: string[]) => {
    for (const k of Object.keys(o))
      if (k !== "kind" && !keys.includes(k)) throw new ActionError(`${String(o.kind)}: unknown field "${k}"`);
  };
  switch (o.kind) {
    case "pause":
    case "resume":
    case "stop":
      allow([]);
      return { kind: o.kind };
    case "balloon":
      allow(["bytes"]);
      return { kind: "balloon", bytes: balloonBytes(o.bytes) };
    case "screenshot":
      allow(["path"]);
      if (typeof o.path !== "string" || o.path === "")
        throw new ActionError("screenshot: path must be a non-empty string");
      return { kind: "screenshot", path: o.path };
    default:
      throw new ActionError(`unknown action "${String(o.kind)}" (known: ${VM_ACTION_KINDS.join(", ")})`);
  }
}

/** Parse the text form a monitor line uses: `pause`, `resume`, `stop`, `balloon 128M`, `screenshot out.png`. */
export function parseActionLine(line: string): VmAction {
  const words = line
    .trim()
    .split(/\s+/)
    .filter((w) => w !== "");
  const [kind, ...args] = words;
  if (kind === undefined) throw new ActionError("empty action");
  switch (kind) {
    case "pause":
    case "resume":
    case "stop":
      if (args.length) throw new ActionError(`${kind} takes no argument`);
      return { kind };
    case "balloon":
      if (args.length !== 1) throw new ActionError("usage: balloon SIZE (e.g. balloon 128M)");
      return { kind, bytes: balloonBytes(args[0]) };
    case "screenshot":
      if (args.length !== 1) throw new ActionError("usage: screenshot PATH");
      return { kind, path: args[0]! };
    default:
      throw new ActionError(`unknown action "${kind}" (known: ${VM_ACTION_KINDS.join(", ")})`);
  }
}
