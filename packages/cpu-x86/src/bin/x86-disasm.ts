#!/usr/bin/env node
// x86-disasm: owned by the decoder work (issue 3); replaced once the formatter lands.
console.error("x86-disasm: the decoder is not built yet");
process.exit(2);
