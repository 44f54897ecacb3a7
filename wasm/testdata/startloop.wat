;; startloop: a start section that never returns (runs at instantiation).
(module
  (memory (export "memory") 1 1)
  (func $start (loop $l (br $l)))
  (start $start)
  (func (export "handle_request") (result i64) (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
