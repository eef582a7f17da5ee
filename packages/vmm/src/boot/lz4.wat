;; The LZ4 block decoder behind payload.ts's lz4Legacy, in WebAssembly: the bundled kernel's
;; payload inflates cold in ~12 ms instead of the JS decoder's ~55 ms (bench/lz4-cold.mjs), as one
;; long call runs in V8's baseline wasm tier (Liftoff) from the start, where the JS one ran in the
;; interpreter until on-stack replacement. Most of what is left is the host faulting in the output.
;;
;; Assembled by scripts/build-lz4-wasm.ts (`npm run build:lz4-wasm`) into src/generated/lz4-wasm.ts;
;; test/payload.test.ts re-assembles this file and fails when the committed bytes differ.
;;
;; The block format (lz4 doc/lz4_Block_format.md): sequences of a token (literal length in the high
;; nibble, match length - 4 in the low one, 15 continuing in bytes that add up until one is not
;; 255), the literals, a 16-bit little-endian offset back into the output, and the match. The last
;; sequence has literals only and ends the block exactly.
;;
;; The input is hostile (the guest image): `block` checks every read against `end` and every write
;; against `limit` before it makes it, in the order test/lz4-reference.ts (the JS decoder it
;; replaced) does, and returns which check failed as a negative code that payload.ts turns into the
;; same PayloadError. Copies wider than a byte (8 or 16 bytes at a time, which may write a few
;; bytes past the sequence's end for the next sequence to overwrite) are taken only where the
;; checked room allows them.
;;
;; Memory (imported, sized by the caller): the compressed stream, then the output. The caller keeps
;; it below 2^31 bytes, so every address and length here is a non-negative i32 and no unsigned
;; comparison can wrap; lengths saturate at 2^31, above any room a check compares them with.
(module
  (import "lz4" "memory" (memory 0))

  ;; The offending match offset after a -6.
  (global $detail (export "detail") (mut i32) (i32.const 0))

  ;; Inflates the block in [start, end) to [pos, ...) and returns the output's new end, or:
  ;;   -1 truncated sequence          -2 truncated literal length    -3 literals run past the block
  ;;   -4 output exceeds the limit    -5 truncated match offset      -6 match offset out of range
  ;;   -7 truncated match length
  (func (export "block") (param $start i32) (param $end i32) (param $pos i32) (param $limit i32)
    (result i32)
    (local $i i32) (local $o i32) (local $token i32) (local $lit i32) (local $b i32)
    (local $offset i32) (local $len i32) (local $from i32) (local $stop i32) (local $n i32)
    (local.set $i (local.get $start))
    (local.set $o (local.get $pos))
    (loop $sequence
      ;; Fast path, most sequences of a kernel: with 32 input and 40 output bytes to spare, a token
      ;; with literals <= 14 and a match <= 18 bytes passes every check but the offset's, and both
      ;; copies fit as fixed 16- and 24-byte moves.
      (if (i32.and
            (i32.ge_u (i32.sub (local.get $end) (local.get $i)) (i32.const 32))
            (i32.ge_u (i32.sub (local.get $limit) (local.get $o)) (i32.const 40)))
        (then
          (local.set $token (i32.load8_u (local.get $i)))
          (if (i32.and
                (i32.lt_u (local.get $token) (i32.const 0xf0))
                (i32.ne (i32.and (local.get $token) (i32.const 15)) (i32.const 15)))
            (then
              (local.set $lit (i32.shr_u (local.get $token) (i32.const 4)))
              (i64.store (local.get $o) (i64.load offset=1 (local.get $i)))
              (i64.store offset=8 (local.get $o) (i64.load offset=9 (local.get $i)))
              (local.set $i (i32.add (i32.add (local.get $i) (i32.const 1)) (local.get $lit)))
              (local.set $o (i32.add (local.get $o) (local.get $lit)))
              (local.set $offset (i32.load16_u (local.get $i)))
              (local.set $i (i32.add (local.get $i) (i32.const 2)))
              (if (i32.or
                    (i32.eqz (local.get $offset))
                    (i32.gt_u (local.get $offset) (i32.sub (local.get $o) (local.get $pos))))
                (then (global.set $detail (local.get $offset)) (return (i32.const -6))))
              (local.set $from (i32.sub (local.get $o) (local.get $offset)))
              (local.set $stop
                (i32.add (local.get $o)
                  (i32.add (i32.and (local.get $token) (i32.const 15)) (i32.const 4))))
              ;; 8 bytes back or more, each 8-byte step reads only bytes already written.
              (if (i32.ge_u (local.get $offset) (i32.const 8))
                (then
                  (i64.store (local.get $o) (i64.load (local.get $from)))
                  (i64.store offset=8 (local.get $o) (i64.load offset=8 (local.get $from)))
                  (i64.store offset=16 (local.get $o) (i64.load offset=16 (local.get $from))))
                (else
                  (loop $bytes
                    (i32.store8 (local.get $o) (i32.load8_u (local.get $from)))
                    (local.set $o (i32.add (local.get $o) (i32.const 1)))
                    (local.set $from (i32.add (local.get $from) (i32.const 1)))
                    (br_if $bytes (i32.lt_u (local.get $o) (local.get $stop))))))
              (local.set $o (local.get $stop))
              (br $sequence)))))

      ;; General path: every check, one at a time.
      (if (i32.ge_u (local.get $i) (local.get $end)) (then (return (i32.const -1))))
      (local.set $token (i32.load8_u (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (local.set $lit (i32.shr_u (local.get $token) (i32.const 4)))
      (if (i32.eq (local.get $lit) (i32.const 15))
        (then
          (loop $more
            (if (i32.ge_u (local.get $i) (local.get $end)) (then (return (i32.const -2))))
            (local.set $b (i32.load8_u (local.get $i)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (local.set $lit
              (select (i32.const 0x80000000) (i32.add (local.get $lit) (local.get $b))
                (i32.ge_u (local.get $lit) (i32.const 0x80000000))))
            (br_if $more (i32.eq (local.get $b) (i32.const 255))))))
      (if (i32.gt_u (local.get $lit) (i32.sub (local.get $end) (local.get $i)))
        (then (return (i32.const -3))))
      (if (i32.gt_u (local.get $lit) (i32.sub (local.get $limit) (local.get $o)))
        (then (return (i32.const -4))))
      (if (i32.and
            (i32.le_u (local.get $lit) (i32.const 16))
            (i32.and
              (i32.ge_u (i32.sub (local.get $end) (local.get $i)) (i32.const 16))
              (i32.ge_u (i32.sub (local.get $limit) (local.get $o)) (i32.const 16))))
        (then
          (i64.store (local.get $o) (i64.load (local.get $i)))
          (i64.store offset=8 (local.get $o) (i64.load offset=8 (local.get $i))))
        (else (memory.copy (local.get $o) (local.get $i) (local.get $lit))))
      (local.set $i (i32.add (local.get $i) (local.get $lit)))
      (local.set $o (i32.add (local.get $o) (local.get $lit)))
      (if (i32.eq (local.get $i) (local.get $end)) (then (return (local.get $o))))
      (if (i32.lt_u (i32.sub (local.get $end) (local.get $i)) (i32.const 2))
        (then (return (i32.const -5))))
      (local.set $offset (i32.load16_u (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 2)))
      (if (i32.or
            (i32.eqz (local.get $offset))
            (i32.gt_u (local.get $offset) (i32.sub (local.get $o) (local.get $pos))))
        (then (global.set $detail (local.get $offset)) (return (i32.const -6))))
      (local.set $len (i32.and (local.get $token) (i32.const 15)))
      (if (i32.eq (local.get $len) (i32.const 15))
        (then
          (loop $more
            (if (i32.ge_u (local.get $i) (local.get $end)) (then (return (i32.const -7))))
            (local.set $b (i32.load8_u (local.get $i)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (local.set $len
              (select (i32.const 0x80000000) (i32.add (local.get $len) (local.get $b))
                (i32.ge_u (local.get $len) (i32.const 0x80000000))))
            (br_if $more (i32.eq (local.get $b) (i32.const 255))))))
      (local.set $len (i32.add (local.get $len) (i32.const 4)))
      (if (i32.gt_u (local.get $len) (i32.sub (local.get $limit) (local.get $o)))
        (then (return (i32.const -4))))
      (local.set $from (i32.sub (local.get $o) (local.get $offset)))
      (local.set $stop (i32.add (local.get $o) (local.get $len)))
      (if (i32.and
            (i32.ge_u (local.get $offset) (i32.const 8))
            (i32.and
              (i32.lt_u (local.get $len) (i32.const 64))
              (i32.ge_u (i32.sub (local.get $limit) (local.get $stop)) (i32.const 8))))
        (then
          (loop $words
            (i64.store (local.get $o) (i64.load (local.get $from)))
            (local.set $o (i32.add (local.get $o) (i32.const 8)))
            (local.set $from (i32.add (local.get $from) (i32.const 8)))
            (br_if $words (i32.lt_u (local.get $o) (local.get $stop)))))
        (else
          (if (i32.ge_u (local.get $offset) (local.get $len))
            (then (memory.copy (local.get $o) (local.get $from) (local.get $len)))
            ;; Overlapping: the match repeats the last `offset` bytes, as a forward byte copy would.
            (else
              (if (i32.lt_u (local.get $len) (i32.const 64))
                (then
                  (loop $bytes
                    (i32.store8 (local.get $o) (i32.load8_u (local.get $from)))
                    (local.set $o (i32.add (local.get $o) (i32.const 1)))
                    (local.set $from (i32.add (local.get $from) (i32.const 1)))
                    (br_if $bytes (i32.lt_u (local.get $o) (local.get $stop)))))
                (else
                  (if (i32.eq (local.get $offset) (i32.const 1))
                    ;; A run of one byte: the kernel's zero and 0xcc padding, most of its output.
                    (then (memory.fill (local.get $o) (i32.load8_u (local.get $from)) (local.get $len)))
                    ;; [from, o) holds whole periods of the pattern: copy it forward, doubling.
                    (else
                      (loop $double
                        (local.set $n (i32.sub (local.get $o) (local.get $from)))
                        (if (i32.gt_u (local.get $n) (i32.sub (local.get $stop) (local.get $o)))
                          (then (local.set $n (i32.sub (local.get $stop) (local.get $o)))))
                        (memory.copy (local.get $o) (local.get $from) (local.get $n))
                        (local.set $o (i32.add (local.get $o) (local.get $n)))
                        (br_if $double (i32.lt_u (local.get $o) (local.get $stop))))))))))))
      (local.set $o (local.get $stop))
      (br $sequence))
    (unreachable)))
