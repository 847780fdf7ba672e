/* C glue for the cgo package: see shim.h. */
#include "shim.h"

#include "_cgo_export.h"

backlite_result backlite_go_keys(backlite_storage *s, uintptr_t handle, backlite_error **err) {
    return backlite_storage_keys(s, (backlite_key_visitor)backliteGoVisitKey, (void *)handle, err);
}

backlite_result backlite_go_get_chunks(backlite_storage *s, const uint8_t *key, size_t key_len,
                                       uintptr_t handle, backlite_error **err) {
    return backlite_storage_get_chunks(s, key, key_len, (backlite_chunk_visitor)backliteGoVisitChunk,
                                       (void *)handle, NULL, err);
}

backlite_result backlite_go_cached_call(backlite_storage *s, const uint8_t *key, size_t key_len,
                                        uintptr_t handle, int with_barrier, int64_t expiration_ms,
                                        backlite_buf *value_out, backlite_error **err) {
    backlite_barrier barrier = {
        (void *)handle,
        (int32_t (*)(void *))backliteGoLock,
        (void (*)(void *))backliteGoUnlock,
    };
    return backlite_cached_call(s, key, key_len, (backlite_compute_fn)backliteGoCompute,
                                (void *)handle, with_barrier ? &barrier : NULL, expiration_ms,
                                value_out, err);
}
