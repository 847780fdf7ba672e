/* C glue for the cgo package: the C library's callbacks, bound to the Go functions
 * exported in callbacks.go, with a runtime/cgo.Handle as their user_data. */
#ifndef BACKLITE_GO_SHIM_H
#define BACKLITE_GO_SHIM_H

#include <stdint.h>
#include <backlite.h>

backlite_result backlite_go_keys(backlite_storage *s, uintptr_t handle, backlite_error **err);

backlite_result backlite_go_get_chunks(backlite_storage *s, const uint8_t *key, size_t key_len,
                                       uintptr_t handle, backlite_error **err);

backlite_result backlite_go_cached_call(backlite_storage *s, const uint8_t *key, size_t key_len,
                                        uintptr_t handle, int with_barrier, int64_t expiration_ms,
                                        backlite_buf *value_out, backlite_error **err);

#endif
