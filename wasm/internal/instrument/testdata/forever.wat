;; forever: "run" loops forever; "recurse" recurses exponentially without
;; any loop; "add" is a leaf function (not instrumented at entry).
(module
  (memory (export "memory") 1 1)
  (func (export "run")
    (loop $l (br $l)))
  (func $fib (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add
        (call $fib (i32.sub (local.get $n) (i32.const 1)))
        (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "recurse") (result i32) (call $fib (i32.const 60)))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1))))
