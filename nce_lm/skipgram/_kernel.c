/* The skip-gram and CBOW update fused into one pass per example, for the CPU.
 *
 * It computes exactly the update of nce_lm.skipgram.SkipGramTrainer._update (the torch path): a batch of
 * examples is scored against the tables as they stand at the start of the batch, and the SGD steps of all
 * its examples are then added into the touched rows. An example is a centre word and its context words; its
 * input h is the mean of their input vectors. Skip-gram's examples have one context word each (h = v_context,
 * a (context, centre) pair); CBOW's have the whole window (word2vec -cbow 1, gensim cbow_mean=1), and, as in
 * word2vec.c and gensim, the step for h is added to every context word's row undivided. What the torch path
 * does in a dozen kernels that each stream (B, 1 + k, d) tensors through memory, this does in three passes
 * over the batch that keep every row in cache:
 *
 *   1. per example, in parallel over examples: draw k noise words (Walker's alias method, counter-based
 *      random numbers; with noise keys, examples with one key share one draw: the pairs of a skip-gram
 *      window, Ji et al. 2016, so that their 1 + k output rows stay in L1 from pair to pair), the input h,
 *      the 1 + k scores s_j = h . u_j + b_j, the logits z_j = s_j - offset_j, the gradient of the objective
 *      with respect to them, and the example's step for h;
 *   2. in parallel over output rows (each row has one owning thread, see owner()): add every example's step
 *      into the rows of u and b it owns, in example order, the pairs of a window (which share their 1 + k
 *      rows) together, so that a row is loaded and stored once per window (add_output_steps);
 *   3. the same for the rows of v: each context word of each example, in order.
 *
 * Every addition into a row happens in example order whatever the thread count, and every random number is
 * a function of (seed, example index or noise key, sample index): a run gives the same tables bit for bit with any number
 * of threads.
 *
 * The objective enters only through how the scores become a classification of the data word against the
 * noise words (docs/objectives.md): binary (nce, neg), loss = softplus(-z_0) + sum_j softplus(z_j), or
 * (1 + k)-way (ranking, infonce), loss = logsumexp(z) - z_0, with a per-word logit offset (log k q(w) for nce,
 * log q(w) for ranking, 0 for neg and infonce).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__) && defined(__linux__)
/* Copies of the hot loop for CPUs with AVX-512, with AVX2 and FMA, and for any x86-64, chosen at load time. */
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif
/* Everything the hot loop calls is inlined into it, so that each copy is compiled for its instruction set. */
#define INLINE static inline __attribute__((always_inline))

/* A barrier for the team of threads: spin briefly, then yield (the machine may have fewer free cores). */
typedef struct {
    atomic_int waiting;
    atomic_int generation;
    int size;
} Barrier;

static void barrier_wait(Barrier *barrier) {
    int generation = atomic_load_explicit(&barrier->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&barrier->waiting, 1, memory_order_acq_rel) == barrier->size - 1) {
        atomic_store_explicit(&barrier->waiting, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&barrier->generation, 1, memory_order_acq_rel);
        return;
    }
    for (long spins = 0; atomic_load_explicit(&barrier->generation, memory_order_acquire) == generation; spins++) {
        if (spins > 2000) sched_yield();
    }
}

#define PREFETCH_DISTANCE 2 /* examples ahead whose rows are prefetched */

typedef struct {
    /* Tables, updated in place: row w starts at w * stride and holds dim floats; with has_bias, the output
     * row holds the word's bias b_w after them, so that the bias is written by the row's owner alone. */
    float *input;        /* (V, stride) v */
    float *output;       /* (V, stride) u, then b */
    int has_bias, train_bias; /* a bias in the score; whether SGD updates it */
    int64_t stride;
    /* The examples and the objective. */
    const int32_t *context; /* (W,) the context words of all examples, example after example */
    const int64_t *context_start; /* (E + 1,): example e's are context[start[e] .. start[e + 1]); NULL: one each */
    const int32_t *centre;  /* (E,) */
    int64_t pairs;          /* E, the number of examples */
    const float *offset;    /* (V,) logit offset per word */
    int softmax;            /* 0: binary classification, 1: (1 + k)-way */
    /* The noise: Walker's alias table. */
    const float *accept;    /* (V,) */
    const int64_t *alias;   /* (V,) */
    int64_t vocab;
    int dim, negatives, batch, threads;
    uint64_t seed;
    int64_t first_pair;     /* index of example 0 within the epoch: keys the random numbers */
    const int64_t *noise_key; /* (E,) the key of each example's noise draw; NULL: first_pair + its index.
                               * Examples with one key share one set of k noise words (a window's pairs). */
    double lr_begin, lr_end; /* learning rate at the first example and after the last, linear in between */
    /* Work space for one batch. */
    int64_t *candidates;    /* (batch, 1 + k): the centre word, then the noise words */
    float *steps;           /* (batch, 1 + k): -lr * d loss / d z */
    float *context_steps;   /* (batch, d): the step for h */
    float *means;           /* (batch, d): h of the examples with several context words (CBOW) */
    float *losses;          /* (batch,) */
    uint8_t *repeats;       /* (batch,): 1 where a slot holds the candidates of the slot before (a window's pair) */
    double loss_sum;
    Barrier barrier;
    atomic_int gate;        /* set once every thread of the team has been started */
} Job;

typedef struct {
    Job *job;
    int thread;
} Worker;

INLINE uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Draw from q with one 64-bit random number: the high half picks a column, 24 low bits the coin. */
INLINE int64_t draw_noise(const Job *job, uint64_t counter) {
    uint64_t bits = splitmix64(job->seed ^ splitmix64(counter));
    int64_t column = (int64_t)(((bits >> 32) * (uint64_t)job->vocab) >> 32);
    float coin = (float)(bits & 0xFFFFFF) * (1.0f / 16777216.0f);
    return coin < job->accept[column] ? column : job->alias[column];
}

/* Eight floats as one vector of GCC's and Clang's vector extensions (an AVX register, or two SSE ones): every
 * operation is the IEEE operation of each lane, and ISO C mode fuses no multiply-add, so a lane computes what
 * the scalar loop computes, bit for bit. The hot loops below keep their partial sums in such vectors, which the
 * compiler then holds in registers. */
typedef float Lanes __attribute__((vector_size(32)));
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi" /* no Lanes cross a call: the functions that return them are inlined */
#endif

INLINE Lanes load8(const float *p) {
    Lanes x;
    memcpy(&x, p, sizeof x);
    return x;
}

INLINE void store8(float *p, const Lanes *x) { memcpy(p, x, sizeof *x); }

/* The sum of a dot product's eight partial sums, in one fixed order. */
INLINE float sum8(const Lanes *lanes) {
    const Lanes p = *lanes;
    return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

/* The dot products of a with rows[r], r < count (at most 4, a constant where it is inlined), into out[r]. Each
 * is summed in one fixed order: eight partial sums over the whole blocks of eight, sum8, then the last n % 8
 * products in order. The count rows make independent chains of additions that share the loads of a. */
INLINE void dots(const float *restrict a, const float *const *rows, int count, int n, float *out) {
    Lanes partial[4] = {{0}};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const Lanes x = load8(a + i);
        for (int r = 0; r < count; r++) partial[r] += x * load8(rows[r] + i);
    }
    for (int r = 0; r < count; r++) {
        float sum = sum8(&partial[r]);
        for (int t = i; t < n; t++) sum += a[t] * rows[r][t];
        out[r] = sum;
    }
}

INLINE void axpy(float alpha, const float *restrict x, float *restrict y, int n) {
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* out += sum over r < count of alpha[r] rows[r], added in order of r: bit for bit what one axpy per row gives,
 * with out loaded and stored once instead of once per row. Thirty-two floats at a time: four independent
 * chains of additions, so that the adder is not kept waiting on one. */
INLINE void add_rows(float *restrict out, const float *alpha, const float *const *rows, int count, int n) {
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        Lanes s0 = load8(out + i), s1 = load8(out + i + 8), s2 = load8(out + i + 16), s3 = load8(out + i + 24);
        for (int r = 0; r < count; r++) {
            const float *x = rows[r] + i;
            s0 += alpha[r] * load8(x);
            s1 += alpha[r] * load8(x + 8);
            s2 += alpha[r] * load8(x + 16);
            s3 += alpha[r] * load8(x + 24);
        }
        store8(out + i, &s0);
        store8(out + i + 8, &s1);
        store8(out + i + 16, &s2);
        store8(out + i + 24, &s3);
    }
    for (; i + 8 <= n; i += 8) {
        Lanes sum = load8(out + i);
        for (int r = 0; r < count; r++) sum += alpha[r] * load8(rows[r] + i);
        store8(out + i, &sum);
    }
    for (; i < n; i++) {
        float sum = out[i];
        for (int r = 0; r < count; r++) sum += alpha[r] * rows[r][i];
        out[i] = sum;
    }
}

/* The context words of example p: context[first_context(p) .. first_context(p + 1)). */
INLINE int64_t first_context(const Job *job, int64_t p) {
    return job->context_start ? job->context_start[p] : p;
}

/* The input h of example p (slot i of the batch): its context word's row when it has one, else the mean of
 * its context words' rows, summed in order and scaled by 1 / count (as word2vec.c and gensim), kept in slot i
 * of job->means. With compute 0, the mean computed before. */
INLINE const float *example_input(Job *job, int64_t p, int64_t i, int compute) {
    const int64_t begin = first_context(job, p), end = first_context(job, p + 1);
    if (end - begin == 1) return job->input + job->context[begin] * job->stride;
    float *mean = job->means + i * job->dim;
    if (compute) {
        memset(mean, 0, sizeof(float) * job->dim);
        for (int64_t c = begin; c < end; c++) axpy(1.0f, job->input + job->context[c] * job->stride, mean, job->dim);
        const float scale = 1.0f / (float)(end - begin);
        for (int k = 0; k < job->dim; k++) mean[k] *= scale;
    }
    return mean;
}

/* The binary classifier's loss on logit x is softplus(x) = max(x, 0) + log(1 + e), e = exp(-|x|), and its
 * gradient sigmoid(x). sigmoid_and_loss_terms returns sigmoid(x), adds max(x, 0) to *linear and multiplies
 * *product by 1 + e: a pair's loss is then sum(linear) + log(prod(1 + e)), one logarithm per pair. */
INLINE float sigmoid_and_loss_terms(float x, float *linear, double *product) {
    float e = expf(-fabsf(x));
    *linear += x > 0 ? x : 0.0f;
    *product *= 1.0 + (double)e;
    return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

/* Which thread adds into row w: a multiplicative hash, so that the frequent words (small ids) spread out. */
INLINE int owner(int64_t w, int threads) {
    return (int)(((uint64_t)((uint32_t)w * 0x9E3779B1u) * (uint64_t)threads) >> 32);
}

/* Ask for a row's cache lines ahead of its use: the rows of a pair are scattered over tables larger than L2. */
INLINE void prefetch_row(const float *row, int d, int for_writing) {
    for (int offset = 0; offset < d; offset += 16) {
        if (for_writing) __builtin_prefetch(row + offset, 1, 3);
        else __builtin_prefetch(row + offset, 0, 3);
    }
}

/* Ask for the input rows of example p ahead of their use. */
INLINE void prefetch_inputs(const Job *job, int64_t p) {
    for (int64_t c = first_context(job, p); c < first_context(job, p + 1); c++)
        prefetch_row(job->input + job->context[c] * job->stride, job->dim, 0);
}

/* Whether example p (slot i of the batch, in a share starting at slot from) copies the draw of the example
 * before it: the next pair of a window. A key is its window's centre position, so such a pair has its
 * predecessor's candidates, centre word included. */
INLINE int shares_noise(const Job *job, int64_t p, int64_t i, int64_t from) {
    return job->noise_key && i > from && job->noise_key[p] == job->noise_key[p - 1];
}

/* The candidates of example p (slot i of the batch, the thread's share starting at slot from): its centre
 * word, then k words drawn from q, keyed by its noise key (or index); an example with its predecessor's key
 * copies its predecessor's draw, which is the draw of that key. */
INLINE void draw_candidates(Job *job, int64_t p, int64_t i, int64_t from) {
    const int width = 1 + job->negatives;
    int64_t *candidates = job->candidates + i * width;
    candidates[0] = job->centre[p];
    job->repeats[i] = 0;
    if (shares_noise(job, p, i, from)) { /* the previous pair's */
        memcpy(candidates + 1, candidates + 1 - width, sizeof(int64_t) * job->negatives);
        job->repeats[i] = candidates[0] == candidates[-width];
        return;
    }
    const uint64_t key = job->noise_key ? (uint64_t)job->noise_key[p] : (uint64_t)(job->first_pair + p);
    for (int j = 1; j < width; j++) candidates[j] = draw_noise(job, key * (uint64_t)job->negatives + (j - 1));
}

/* Phase 1 for example p (slot i of the batch): h, scores, gradients, the step for h. */
INLINE void score_pair(Job *job, int64_t p, int64_t i, float lr) {
    const int d = job->dim, width = 1 + job->negatives;
    const int64_t *candidates = job->candidates + i * width;
    float *steps = job->steps + i * width;
    float *context_step = job->context_steps + i * d;
    const float *v = example_input(job, p, i, 1);
    const float *rows[width];
    float logits[width];
    for (int j = 0; j < width; j++) rows[j] = job->output + candidates[j] * job->stride;
    int j = 0; /* four rows at a time, then two, then one: the same sums in the same order */
    for (; j + 4 <= width; j += 4) dots(v, rows + j, 4, d, logits + j);
    for (; j + 2 <= width; j += 2) dots(v, rows + j, 2, d, logits + j);
    for (; j < width; j++) dots(v, rows + j, 1, d, logits + j);
    for (int j = 0; j < width; j++)
        logits[j] = (logits[j] + (job->has_bias ? rows[j][d] : 0.0f)) - job->offset[candidates[j]];
    float loss;
    if (job->softmax) { /* loss = logsumexp(z) - z_0; d loss / d z_j = softmax_j - [j = 0] */
        float top = logits[0], total = 0.0f;
        for (int j = 1; j < width; j++) top = logits[j] > top ? logits[j] : top;
        for (int j = 0; j < width; j++) total += (steps[j] = expf(logits[j] - top));
        for (int j = 0; j < width; j++) steps[j] = -lr * (steps[j] / total - (j == 0));
        loss = top + logf(total) - logits[0];
    } else { /* loss = softplus(-z_0) + sum_j softplus(z_j); d/dz_0 = -sigmoid(-z_0), d/dz_j = sigmoid(z_j) */
        float linear = 0.0f;
        double product = 1.0, log_products = 0.0;
        steps[0] = lr * sigmoid_and_loss_terms(-logits[0], &linear, &product);
        for (int j = 1; j < width; j++) {
            steps[j] = -lr * sigmoid_and_loss_terms(logits[j], &linear, &product);
            if (product > 0x1p512) { /* each factor is at most 2: keep the product far from overflow */
                log_products += log(product);
                product = 1.0;
            }
        }
        loss = linear + (float)(log_products + log(product));
    }
    job->losses[i] = loss;
    memset(context_step, 0, sizeof(float) * d);
    add_rows(context_step, steps, rows, width, d);
}

/* Whether slot i of the batch holds the candidates of slot i - 1, as draw_candidates recorded it: the pairs of
 * one window (in one thread's share of phase 1) do, and phase 2 adds their steps into each row together. */
INLINE int repeats_candidates(const Job *job, int64_t i) { return job->repeats[i]; }

/* Whether column j holds the first occurrence of its word among the candidates. */
INLINE int first_column(const int64_t *candidates, int j) {
    for (int c = 0; c < j; c++)
        if (candidates[c] == candidates[j]) return 0;
    return 1;
}

#define TERMS 32 /* steps added into a row per pass over it */

/* Add steps alpha[t] inputs[t] (t < terms, in order) into an output row and, when trained, its bias. */
INLINE void add_to_output_row(const Job *job, float *row, const float *alpha, const float *const *inputs, int terms) {
    add_rows(row, alpha, inputs, terms, job->dim);
    if (job->train_bias)
        for (int t = 0; t < terms; t++) row[job->dim] += alpha[t];
}

/* Phase 2 for one output row: the word w in column j of slots from .. to - 1 of the batch (which share their
 * candidates) gets the step of every (slot, column holding w), in slot order and within a slot in column order:
 * the order of one axpy per (example, column), so the same bits, with the row loaded and stored once per
 * TERMS steps instead of once per step. */
INLINE void add_output_steps(Job *job, int64_t first, int64_t from, int64_t to, int j) {
    const int width = 1 + job->negatives;
    const int64_t *candidates = job->candidates + from * width;
    float *row = job->output + candidates[j] * job->stride;
    float alpha[TERMS];
    const float *inputs[TERMS];
    int terms = 0;
    for (int64_t i = from; i < to; i++) {
        const float *v = example_input(job, first + i, i, 0);
        for (int c = j; c < width; c++) {
            if (candidates[c] != candidates[j]) continue;
            if (terms == TERMS) {
                add_to_output_row(job, row, alpha, inputs, terms);
                terms = 0;
            }
            alpha[terms] = job->steps[i * width + c];
            inputs[terms++] = v;
        }
    }
    add_to_output_row(job, row, alpha, inputs, terms);
}

HOT static void run_worker(Job *job, int thread) {
    const int d = job->dim, width = 1 + job->negatives, threads = job->threads;
    const int64_t stride = job->stride;
    for (int64_t first = 0; first < job->pairs; first += job->batch) {
        const int64_t count = job->pairs - first < job->batch ? job->pairs - first : job->batch;
        const float lr = (float)(job->lr_begin + (job->lr_end - job->lr_begin) * (double)first / (double)job->pairs);
        /* 1. score the pairs: a contiguous share per thread. */
        const int64_t from = count * thread / threads, to = count * (thread + 1) / threads;
        for (int64_t i = from; i < to; i++) draw_candidates(job, first + i, i, from);
        for (int64_t i = from; i < to; i++) {
            if (i + PREFETCH_DISTANCE < to) {
                const int64_t *ahead = job->candidates + (i + PREFETCH_DISTANCE) * width;
                prefetch_inputs(job, first + i + PREFETCH_DISTANCE);
                if (!repeats_candidates(job, i + PREFETCH_DISTANCE)) /* new rows */
                    for (int j = 0; j < width; j++) prefetch_row(job->output + ahead[j] * stride, d, 0);
            }
            score_pair(job, first + i, i, lr);
        }
        barrier_wait(&job->barrier);
        /* 2. output rows and biases, each by its owner, in example order (v still as at the batch's start),
         * a run of examples with one list of candidates (a window's pairs) at a time. */
        int64_t asked = 0; /* the examples before this one have had their rows prefetched */
        for (int64_t i = 0, next; i < count; i = next) {
            for (next = i + 1; next < count && repeats_candidates(job, next); next++) {}
            for (; asked < count && asked < next + PREFETCH_DISTANCE; asked++) {
                if (asked > 0 && repeats_candidates(job, asked)) continue;
                const int64_t *ahead = job->candidates + asked * width;
                for (int j = 0; j < width; j++)
                    if (owner(ahead[j], threads) == thread) prefetch_row(job->output + ahead[j] * stride, d, 1);
            }
            const int64_t *candidates = job->candidates + i * width;
            for (int j = 0; j < width; j++)
                if (owner(candidates[j], threads) == thread && first_column(candidates, j))
                    add_output_steps(job, first, i, next, j);
        }
        if (thread == 0)
            for (int64_t i = 0; i < count; i++) job->loss_sum += job->losses[i];
        barrier_wait(&job->barrier);
        /* 3. input rows, each by its owner, in example order: every context word gets the step for h. */
        for (int64_t i = 0; i < count; i++) {
            for (int64_t at = first_context(job, first + i); at < first_context(job, first + i + 1); at++) {
                int64_t c = job->context[at];
                if (owner(c, threads) == thread) axpy(1.0f, job->context_steps + i * d, job->input + c * stride, d);
            }
        }
        barrier_wait(&job->barrier);
    }
}

static void *worker_main(void *arg) {
    Worker *worker = arg;
    while (!atomic_load_explicit(&worker->job->gate, memory_order_acquire)) sched_yield();
    run_worker(worker->job, worker->thread);
    return NULL;
}

/* Start the team and train. Threads wait at a gate until the team is complete; if the system refuses a
 * thread, the team is simply smaller, which changes the speed and nothing else. */
static void run_team(Job *job) {
    int wanted = job->threads, started = 1;
    pthread_t handles[wanted];
    Worker workers[wanted];
    atomic_init(&job->gate, 0);
    atomic_init(&job->barrier.waiting, 0);
    atomic_init(&job->barrier.generation, 0);
    for (int t = 1; t < wanted; t++) {
        workers[t] = (Worker){job, t};
        if (pthread_create(&handles[t], NULL, worker_main, &workers[t]) != 0) break;
        started++;
    }
    job->threads = started;
    job->barrier.size = started;
    atomic_store_explicit(&job->gate, 1, memory_order_release);
    run_worker(job, 0);
    for (int t = 1; t < started; t++) pthread_join(handles[t], NULL);
}

static int check_size(const Py_buffer *buffer, Py_ssize_t items, Py_ssize_t item_size, const char *name) {
    if (buffer->len != items * item_size) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, expected %zd", name, buffer->len, items * item_size);
        return -1;
    }
    return 0;
}

static PyObject *train_pairs(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"input", "output", "has_bias", "train_bias", "dim", "context", "centre", "offset", "accept", "alias",
                               "softmax", "negatives", "batch", "threads", "seed", "first_pair", "lr_begin",
                               "lr_end", "context_start", "noise_key", NULL};
    Py_buffer input, output, context, centre, offset, accept, alias, context_start = {0}, noise_key = {0};
    int has_bias, train_bias;
    int dim, softmax, negatives, batch, threads;
    unsigned long long seed;
    long long first_pair;
    double lr_begin, lr_end;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "w*w*ppiy*y*y*y*y*piiiKLdd|z*z*", keywords, &input, &output,
                                     &has_bias, &train_bias, &dim, &context, &centre, &offset, &accept, &alias, &softmax,
                                     &negatives, &batch, &threads, &seed, &first_pair, &lr_begin, &lr_end,
                                     &context_start, &noise_key))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t vocab = offset.len / (Py_ssize_t)sizeof(float);
    Py_ssize_t pairs = centre.len / (Py_ssize_t)sizeof(int32_t), words = context.len / (Py_ssize_t)sizeof(int32_t);
    const int64_t *starts = context_start.buf;
    if (vocab < 1 || dim < 1 || negatives < 1 || negatives > 4096 || batch < 1 || threads < 1 || threads > 1024) {
        PyErr_SetString(PyExc_ValueError, "train_pairs: a size or count out of range");
        goto release;
    }
    Py_ssize_t stride = input.len / ((Py_ssize_t)sizeof(float) * vocab);
    if (stride < dim + (has_bias != 0)) {
        PyErr_SetString(PyExc_ValueError, "train_pairs: rows too short for dim (and the bias)");
        goto release;
    }
    if (check_size(&input, vocab * stride, sizeof(float), "input") ||
        check_size(&output, vocab * stride, sizeof(float), "output") ||
        check_size(&context, starts ? words : pairs, sizeof(int32_t), "context") ||
        (starts && check_size(&context_start, pairs + 1, sizeof(int64_t), "context_start")) ||
        (noise_key.buf && check_size(&noise_key, pairs, sizeof(int64_t), "noise_key")) ||
        check_size(&centre, pairs, sizeof(int32_t), "centre") || check_size(&accept, vocab, sizeof(float), "accept") ||
        check_size(&alias, vocab, sizeof(int64_t), "alias"))
        goto release;
    /* Ids and context runs index the tables directly: check them all before any thread runs. */
    if (starts) {
        if (starts[0] != 0 || starts[pairs] != words) {
            PyErr_SetString(PyExc_ValueError,
                            "train_pairs: context_start must run from 0 to the number of context words");
            goto release;
        }
        for (Py_ssize_t i = 0; i < pairs; i++)
            if (starts[i + 1] <= starts[i]) {
                PyErr_SetString(PyExc_ValueError, "train_pairs: every example needs at least one context word");
                goto release;
            }
    }
    const int32_t *ids[2] = {context.buf, centre.buf};
    const Py_ssize_t id_counts[2] = {starts ? words : pairs, pairs};
    for (int a = 0; a < 2; a++)
        for (Py_ssize_t i = 0; i < id_counts[a]; i++)
            if (ids[a][i] < 0 || ids[a][i] >= vocab) {
                PyErr_Format(PyExc_ValueError, "train_pairs: word id %d outside the vocabulary of %zd", ids[a][i],
                             vocab);
                goto release;
            }
    for (Py_ssize_t i = 0; i < vocab; i++)
        if (((const int64_t *)alias.buf)[i] < 0 || ((const int64_t *)alias.buf)[i] >= vocab) {
            PyErr_SetString(PyExc_ValueError, "train_pairs: the alias table points outside the vocabulary");
            goto release;
        }
    if (batch > pairs && pairs > 0) batch = (int)pairs;
    Job job = {
        .input = input.buf, .output = output.buf, .has_bias = has_bias, .train_bias = has_bias && train_bias, .stride = stride,
        .context = context.buf, .context_start = starts, .centre = centre.buf, .pairs = pairs,
        .offset = offset.buf, .softmax = softmax,
        .accept = accept.buf, .alias = alias.buf, .vocab = vocab, .dim = (int)dim, .negatives = negatives,
        .batch = batch, .threads = threads, .seed = seed, .first_pair = first_pair, .noise_key = noise_key.buf,
        .lr_begin = lr_begin, .lr_end = lr_end, .loss_sum = 0.0,
    };
    size_t width = 1 + (size_t)negatives;
    job.candidates = malloc(sizeof(int64_t) * batch * width);
    job.steps = malloc(sizeof(float) * batch * width);
    job.context_steps = malloc(sizeof(float) * batch * dim);
    job.losses = malloc(sizeof(float) * batch);
    job.means = malloc(sizeof(float) * batch * dim);
    job.repeats = malloc(batch);
    if (job.candidates && job.steps && job.context_steps && job.losses && job.means && job.repeats) {
        Py_BEGIN_ALLOW_THREADS
        if (pairs > 0) run_team(&job);
        Py_END_ALLOW_THREADS
        result = PyFloat_FromDouble(job.loss_sum);
    } else {
        PyErr_NoMemory();
    }
    free(job.candidates);
    free(job.steps);
    free(job.context_steps);
    free(job.losses);
    free(job.means);
    free(job.repeats);
release:
    PyBuffer_Release(&input);
    PyBuffer_Release(&output);
    PyBuffer_Release(&context);
    PyBuffer_Release(&centre);
    PyBuffer_Release(&offset);
    PyBuffer_Release(&accept);
    PyBuffer_Release(&alias);
    if (context_start.buf) PyBuffer_Release(&context_start);
    if (noise_key.buf) PyBuffer_Release(&noise_key);
    return result;
}

static PyObject *draw_noise_ids(PyObject *self, PyObject *args) {
    /* The noise words train_pairs draws (count, negatives): without keys, for examples first_pair ..
     * first_pair + count - 1; with keys (count,) int64, for examples keyed keys[0] .. keys[count - 1]. */
    Py_buffer accept, alias, out, keys = {0};
    unsigned long long seed;
    long long first_pair;
    int negatives;
    if (!PyArg_ParseTuple(args, "y*y*w*KLi|z*", &accept, &alias, &out, &seed, &first_pair, &negatives, &keys))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t vocab = accept.len / (Py_ssize_t)sizeof(float);
    if (negatives < 1 || vocab < 1 || alias.len != vocab * (Py_ssize_t)sizeof(int64_t) ||
        out.len % ((Py_ssize_t)sizeof(int64_t) * negatives) != 0 ||
        (keys.buf && keys.len * negatives != out.len)) {
        PyErr_SetString(PyExc_ValueError, "draw_noise_ids: sizes do not match");
    } else {
        Job job = {.accept = accept.buf, .alias = alias.buf, .vocab = vocab, .seed = seed};
        const int64_t *key = keys.buf;
        int64_t *ids = out.buf;
        Py_ssize_t total = out.len / (Py_ssize_t)sizeof(int64_t);
        for (Py_ssize_t n = 0; n < total; n++) {
            const uint64_t example = key ? (uint64_t)key[n / negatives] : (uint64_t)first_pair + n / negatives;
            ids[n] = draw_noise(&job, example * (uint64_t)negatives + n % negatives);
        }
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&accept);
    PyBuffer_Release(&alias);
    PyBuffer_Release(&out);
    if (keys.buf) PyBuffer_Release(&keys);
    return result;
}

/* The context words of centre i as words low .. high - 1 (i among them, to skip): its shrunk window cut to its
 * sentence, the run of equal numbers in line[] holding i, kept in *start .. *end - 1 as i moves left to right. */
INLINE void window_span(const int64_t *line, const int64_t *shrunk, Py_ssize_t n, Py_ssize_t i, Py_ssize_t *start,
                        Py_ssize_t *end, Py_ssize_t *low, Py_ssize_t *high) {
    if (i >= *end) {
        *start = i;
        for (*end = i + 1; *end < n && line[*end] == line[i]; (*end)++) {}
    }
    *low = i - shrunk[i] > *start ? i - shrunk[i] : *start;
    *high = i + shrunk[i] + 1 < *end ? i + shrunk[i] + 1 : *end;
}

static PyObject *window_pairs(PyObject *self, PyObject *args) {
    /* The examples of word2vec's shrunk windows in two passes (windows.window_examples gives the same from numpy):
     * for each centre i in order and each j from i - window to i + window but i, left to right, with
     * |i - j| <= reach[i] in i's sentence (sentence is nondecreasing: a sentence is a run of equal numbers, as
     * a chunk's are), the next pair gets context words[j]; counts[i] is the number of i's pairs. words (n,)
     * int32, sentence and reach (n,) int64, counts (n,) int64. Called first with an empty context, it fills
     * counts alone; then with context and centre (sum(counts),) int32 and, when positions (n,) int64 is not
     * empty, keys (sum(counts),) int64, it fills those too (centre may be empty: CBOW). Returns sum(counts). */
    Py_buffer words, sentence, reach, positions, context, counts, centre, keys;
    int window;
    if (!PyArg_ParseTuple(args, "y*y*y*y*iw*w*w*w*", &words, &sentence, &reach, &positions, &window, &context,
                          &counts, &centre, &keys))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = words.len / (Py_ssize_t)sizeof(int32_t);
    const int64_t *line = sentence.buf, *shrunk = reach.buf;
    int64_t *count = counts.buf, total = 0;
    if (window < 1 || sentence.len != n * (Py_ssize_t)sizeof(int64_t) || reach.len != sentence.len ||
        counts.len != sentence.len || (positions.len && positions.len != sentence.len)) {
        PyErr_SetString(PyExc_ValueError, "window_pairs: sizes do not match");
        goto release;
    }
    Py_ssize_t start = 0, end = 0, low, high; /* window_span's sentence and window of each centre */
    if (context.len == 0) { /* the first call: count */
        for (Py_ssize_t i = 0; i < n; i++) {
            window_span(line, shrunk, n, i, &start, &end, &low, &high);
            total += (count[i] = high - low - 1);
        }
        result = PyLong_FromLongLong(total);
        goto release;
    }
    for (Py_ssize_t i = 0; i < n; i++) total += count[i];
    const int with_centre = centre.len > 0, with_keys = positions.len > 0;
    if (context.len != total * (Py_ssize_t)sizeof(int32_t) || (with_centre && centre.len != context.len) ||
        (with_keys && keys.len != total * (Py_ssize_t)sizeof(int64_t))) {
        PyErr_SetString(PyExc_ValueError, "window_pairs: sizes do not match the counts");
        goto release;
    }
    const int32_t *word = words.buf;
    const int64_t *position = positions.buf;
    int32_t *out_context = context.buf, *out_centre = centre.buf;
    int64_t *out_key = keys.buf, m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        window_span(line, shrunk, n, i, &start, &end, &low, &high);
        for (Py_ssize_t j = low; j < high; j++) {
            if (j == i) continue;
            out_context[m] = word[j];
            if (with_centre) out_centre[m] = word[i];
            if (with_keys) out_key[m] = position[i];
            m++;
        }
    }
    result = PyLong_FromLongLong(m);
release:
    PyBuffer_Release(&words);
    PyBuffer_Release(&sentence);
    PyBuffer_Release(&reach);
    PyBuffer_Release(&positions);
    PyBuffer_Release(&context);
    PyBuffer_Release(&counts);
    PyBuffer_Release(&centre);
    PyBuffer_Release(&keys);
    return result;
}

static PyMethodDef methods[] = {
    {"train_pairs", (PyCFunction)(void (*)(void))train_pairs, METH_VARARGS | METH_KEYWORDS,
     "Train on examples (context words, centre) in batches; returns the summed loss."},
    {"draw_noise_ids", draw_noise_ids, METH_VARARGS, "The noise words train_pairs draws, for tests."},
    {"window_pairs", window_pairs, METH_VARARGS, "The examples of shrunk windows: context words and counts."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&module); }
