/* A spinning thread pool for the verifier's matrix products.
 *
 * Generation runs ~160 small parallel products per token, a few hundred microseconds each. With Dispatch, the
 * second core went back to sleep between them and every product began with a futex wake-up (an IPI, and a VM exit
 * on a virtual machine): on the 2-core VM a Q4_0 model kept the two cores only ~1.6 busy. Here the workers spin
 * (with `pause`) for about a millisecond after each job before they sleep on a condition variable, so the next
 * product finds them awake, as llama.cpp's threadpool does.
 *
 * One job at a time: a second submitter (another thread, or a body that itself calls bk_pool_run) gets a plain loop
 * on its own thread instead of waiting. */
#include "billa_kernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define BK_PAUSE() _mm_pause()
#else
#define BK_PAUSE() ((void)0)
#endif

#define BK_POOL_MAX 8
#define BK_SPIN_NS 1000000LL   /* how long an idle worker spins before it sleeps */

static struct {
    pthread_mutex_t submit;          /* held by the thread whose job is running */
    pthread_mutex_t mu;              /* with cv: sleeping workers */
    pthread_cond_t cv;
    pthread_once_t once;
    int workers;
    /* the job: generation in the high 32 bits, next index in the low 32, so a worker that saw an old job can never
     * claim an index of the next one */
    _Atomic uint64_t word;
    _Atomic int64_t done;
    _Atomic int sleepers;
    int64_t n;
    bk_job_fn fn;
    void *ctx;
} bk_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_ONCE_INIT};

static int64_t bk_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Claims and runs indices of the job whose generation is `gen` until none are left. */
static void bk_pool_drain(uint32_t gen) {
    for (;;) {
        uint64_t w = atomic_load_explicit(&bk_pool.word, memory_order_acquire);
        if ((uint32_t)(w >> 32) != gen) return;
        const int64_t n = bk_pool.n;
        bk_job_fn fn = bk_pool.fn;
        void *ctx = bk_pool.ctx;
        const int64_t i = (int64_t)(uint32_t)w;
        if (i >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&bk_pool.word, &w, w + 1, memory_order_acq_rel, memory_order_acquire)) continue;
        fn(ctx, i);
        atomic_fetch_add_explicit(&bk_pool.done, 1, memory_order_release);
    }
}

static void *bk_pool_worker(void *arg) {
    (void)arg;
    uint32_t seen = 0;
    for (;;) {
        int64_t start = bk_now_ns();
        int spins = 0;
        uint32_t gen;
        while ((gen = (uint32_t)(atomic_load_explicit(&bk_pool.word, memory_order_acquire) >> 32)) == seen) {
            BK_PAUSE();
            if (++spins % 1024 == 0 && bk_now_ns() - start > BK_SPIN_NS) {
                pthread_mutex_lock(&bk_pool.mu);
                atomic_fetch_add(&bk_pool.sleepers, 1);   /* seq_cst, paired with the submitter's store and load */
                while ((uint32_t)(atomic_load(&bk_pool.word) >> 32) == seen) pthread_cond_wait(&bk_pool.cv, &bk_pool.mu);
                atomic_fetch_sub(&bk_pool.sleepers, 1);
                pthread_mutex_unlock(&bk_pool.mu);
                start = bk_now_ns();
            }
        }
        seen = gen;
        bk_pool_drain(gen);
    }
    return NULL;
}

static void bk_pool_start(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int want = (int)(cores < 1 ? 0 : cores > BK_POOL_MAX ? BK_POOL_MAX - 1 : cores - 1);
    for (int k = 0; k < want; k++) {
        pthread_t t;
        if (pthread_create(&t, NULL, bk_pool_worker, NULL) != 0) break;
        pthread_detach(t);
        bk_pool.workers++;
    }
}

void bk_pool_run(int64_t n, bk_job_fn fn, void *ctx) {
    if (n <= 0) return;
    pthread_once(&bk_pool.once, bk_pool_start);
    if (n == 1 || bk_pool.workers == 0 || pthread_mutex_trylock(&bk_pool.submit) != 0) {
        for (int64_t i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    bk_pool.n = n;
    bk_pool.fn = fn;
    bk_pool.ctx = ctx;
    atomic_store_explicit(&bk_pool.done, 0, memory_order_relaxed);
    const uint64_t old = atomic_load_explicit(&bk_pool.word, memory_order_relaxed);
    const uint32_t gen = (uint32_t)(old >> 32) + 1;
    atomic_store(&bk_pool.word, (uint64_t)gen << 32);   /* seq_cst: publishes the job */
    if (atomic_load(&bk_pool.sleepers) > 0) {
        pthread_mutex_lock(&bk_pool.mu);
        pthread_cond_broadcast(&bk_pool.cv);
        pthread_mutex_unlock(&bk_pool.mu);
    }
    bk_pool_drain(gen);
    while (atomic_load_explicit(&bk_pool.done, memory_order_acquire) < n) BK_PAUSE();
    pthread_mutex_unlock(&bk_pool.submit);
}

/* Per-thread scratch that grows and is kept: the prompt panels need up to a few MiB per product, and allocating
 * that per call meant an mmap, ~700 page faults and the zeroing of fresh pages for every product of every layer.
 * The pool's workers live as long as the process, so each keeps its largest buffer per slot. */
void *bk_thread_scratch(int slot, size_t bytes) {
    static __thread void *buf[BK_SCRATCH_SLOTS];
    static __thread size_t cap[BK_SCRATCH_SLOTS];
    if (slot < 0 || slot >= BK_SCRATCH_SLOTS) return NULL;
    if (cap[slot] < bytes) {
        free(buf[slot]);
        const size_t n = (bytes + 63) / 64 * 64;
        buf[slot] = aligned_alloc(64, n);
        cap[slot] = buf[slot] ? n : 0;
    }
    return buf[slot];
}
