;; pathguard: a hand-written http-wasm filter for Sluice.
;;
;; Answers 403 "forbidden" to requests whose path is /admin or below it
;; (/admin, /admin/..., /admin?...; not /administrator), and to URIs too
;; long to inspect (over 64512 bytes). Every other request continues to
;; the upstream with the request header "x-pathguard: passed".
;;
;; Build: wat2wasm pathguard.wat -o pathguard.wasm   (Debian: apt-get install wabt)
(module
  (import "http_handler" "get_uri" (func $get_uri (param i32 i32) (result i32)))
  (import "http_handler" "set_header_value" (func $set_header_value (param i32 i32 i32 i32 i32)))
  (import "http_handler" "set_status_code" (func $set_status_code (param i32)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))

  (memory (export "memory") 1 1)
  (data (i32.const 0) "/admin")       ;; 6 bytes
  (data (i32.const 16) "x-pathguard") ;; 11
  (data (i32.const 32) "passed")      ;; 6
  (data (i32.const 48) "forbidden\n") ;; 10
  ;; 1024..65536: the request URI

  ;; $guarded returns 1 when the URI is under /admin (or too long).
  (func $guarded (result i32)
    (local $n i32) (local $i i32) (local $c i32)
    (local.set $n (call $get_uri (i32.const 1024) (i32.const 64512)))
    (if (i32.gt_u (local.get $n) (i32.const 64512)) (then (return (i32.const 1))))
    (if (i32.lt_u (local.get $n) (i32.const 6)) (then (return (i32.const 0))))
    ;; the first 6 bytes must be "/admin"
    (block $differs
      (loop $next
        (br_if $differs (i32.ne
          (i32.load8_u (i32.add (i32.const 1024) (local.get $i)))
          (i32.load8_u (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $i) (i32.const 6))))
      ;; ...followed by the end, "/" or "?"
      (if (i32.eq (local.get $n) (i32.const 6)) (then (return (i32.const 1))))
      (local.set $c (i32.load8_u (i32.const 1030)))
      (return (i32.or
        (i32.eq (local.get $c) (i32.const 47))    ;; '/'
        (i32.eq (local.get $c) (i32.const 63))))) ;; '?'
    (i32.const 0))

  (func (export "handle_request") (result i64)
    (if (call $guarded)
      (then
        (call $set_status_code (i32.const 403))
        (call $write_body (i32.const 1) (i32.const 48) (i32.const 10)) ;; response body
        (return (i64.const 0)))) ;; answered: next = 0
    ;; request header (kind 0) x-pathguard: passed
    (call $set_header_value (i32.const 0) (i32.const 16) (i32.const 11) (i32.const 32) (i32.const 6))
    (i64.const 1)) ;; next = 1, req_ctx = 0

  (func (export "handle_response") (param $req_ctx i32) (param $is_error i32)))
