;; noexports: exports memory but neither handle_request nor handle_response.
(module
  (memory (export "memory") 1 1)
  (func (export "handle") (result i64) (i64.const 1)))
