;; spin: handle_request counts a loop down from 1,000,000 (a CPU-bound
;; guest, to measure the per-iteration cost of interruptibility).
(module
  (memory (export "memory") 1 1)
  (func (export "handle_request") (result i64)
    (local $i i32)
    (local.set $i (i32.const 1000000))
    (loop $l
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $l (i32.ne (local.get $i) (i32.const 0))))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
