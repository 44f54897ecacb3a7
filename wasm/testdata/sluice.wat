;; sluice: uses the sluice extension. Takes a token from bucket "k" (1 per
;; minute, burst 2); when denied answers 429. Otherwise answers 200 with the
;; body  S|A|C|ID  where S is tls_peer_status, A the allowed flag, C the
;; counter "hits" (mod 10) and ID the SPIFFE ID of the client certificate.
;; Every request adds 1 to the metric "requests_total".
(module
  (import "sluice" "tls_peer_status" (func $tls_peer_status (result i32)))
  (import "sluice" "tls_peer_get" (func $tls_peer_get (param i32 i32 i32) (result i64)))
  (import "sluice" "rate_take" (func $rate_take (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "sluice" "counter_add" (func $counter_add (param i32 i32 i64 i32) (result i32)))
  (import "sluice" "metric_add" (func $metric_add (param i32 i32 i64)))
  (import "http_handler" "set_status_code" (func $set_status_code (param i32)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "k")
  (data (i32.const 8) "hits")
  (data (i32.const 16) "requests_total") ;; 14
  ;; 32..40: rate_take out, 40..48: counter out, 64..: body
  (func (export "handle_request") (result i64)
    (local $allowed i32) (local $n i32)
    (call $metric_add (i32.const 16) (i32.const 14) (i64.const 1))
    (local.set $allowed (call $rate_take (i32.const 0) (i32.const 1)
      (i32.const 1) (i32.const 60000) (i32.const 2) (i32.const 32)))
    (if (i32.eqz (local.get $allowed))
      (then (call $set_status_code (i32.const 429)) (return (i64.const 0))))
    (drop (call $counter_add (i32.const 8) (i32.const 4) (i64.const 1) (i32.const 40)))
    (i32.store8 (i32.const 64) (i32.add (i32.const 48) (call $tls_peer_status)))
    (i32.store8 (i32.const 65) (i32.const 124))
    (i32.store8 (i32.const 66) (i32.add (i32.const 48) (local.get $allowed)))
    (i32.store8 (i32.const 67) (i32.const 124))
    (i32.store8 (i32.const 68) (i32.add (i32.const 48)
      (i32.rem_u (i32.load (i32.const 40)) (i32.const 10))))
    (i32.store8 (i32.const 69) (i32.const 124))
    ;; SPIFFE ID (NUL-terminated) at 70; len includes the NUL
    (local.set $n (i32.wrap_i64 (call $tls_peer_get (i32.const 4) (i32.const 70) (i32.const 1024))))
    (if (i32.gt_u (local.get $n) (i32.const 0))
      (then (local.set $n (i32.sub (local.get $n) (i32.const 1)))))
    (call $write_body (i32.const 1) (i32.const 64) (i32.add (i32.const 6) (local.get $n)))
    (i64.const 0))
  (func (export "handle_response") (param i32 i32)))
