/*
 * A model of API.md's five eviction policies, for tests that run random operations
 * against the library and compare: an exact logical clock, the sizes, the victims.
 * The including test defines MK (keys k0..k{MK-1}) and MMAX (max_size) first.
 */
#ifndef BACKLITE_TEST_POLICY_MODEL_H
#define BACKLITE_TEST_POLICY_MODEL_H

#include "backlite.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if !defined(MK) || !defined(MMAX)
#error "define MK (the number of keys) and MMAX (max_size) before policy_model.h"
#endif

typedef struct {
    bool live;
    size_t size;
    uint64_t last_access, set_order, hits;
} m_entry;

typedef struct {
    m_entry e[MK];
    uint64_t clock, total, evictions;
    backlite_eviction_policy policy;
} model;

static void m_remove(model *m, int k) {
    if (m->e[k].live) {
        m->e[k].live = false;
        m->total -= m->e[k].size;
    }
}

/* The entry the policy evicts next, never `except` (-1: any); -1 when none is live. */
static int m_victim(const model *m, int except) {
    int v = -1;
    for (int k = 0; k < MK; k++) {
        const m_entry *c = &m->e[k];
        if (!c->live || k == except) continue;
        if (v < 0) {
            v = k;
            continue;
        }
        const m_entry *b = &m->e[v];
        bool better = false;
        switch (m->policy) {
        case BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED: better = c->last_access < b->last_access; break;
        case BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED: better = c->last_access > b->last_access; break;
        case BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED:
            better = c->hits < b->hits || (c->hits == b->hits && c->last_access < b->last_access);
            break;
        case BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT: better = c->set_order < b->set_order; break;
        case BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT: better = c->set_order > b->set_order; break;
        }
        if (better) v = k;
    }
    return v;
}

/* Evicts until `room` more bytes fit, never `except`. */
static void m_evict_to(model *m, uint64_t room, int except) {
    while (m->total + room > MMAX) {
        int v = m_victim(m, except);
        if (v < 0) break;
        m_remove(m, v);
        m->evictions++;
    }
}

static void m_store(model *m, int k, size_t size) {
    m->clock++;
    m->e[k] = (m_entry){true, size, m->clock, m->clock, 0};
    m->total += size;
}

/* A set of `size` bytes under key k: the result the library must give. */
static backlite_result m_set(model *m, int k, size_t size, bool expired) {
    m_remove(m, k);
    /* an already expired value stores nothing, whatever its size: OK (storage.rs) */
    if (expired) return BACKLITE_RESULT_OK;
    if (size > MMAX) return BACKLITE_RESULT_TOO_LARGE;
    m_evict_to(m, size, -1);
    m_store(m, k, size);
    return BACKLITE_RESULT_OK;
}

/* A get that found key k. */
static void m_hit(model *m, int k) {
    m->e[k].hits++;
    m->e[k].last_access = ++m->clock;
}

#endif
