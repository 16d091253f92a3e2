/* checkpoint.h: checkpoints of a training run (ckpt_*), to continue after a crash, a
 * preemption or a time limit exactly where it stopped.
 *
 *   DIR/step-00000120/part-00003.safetensors   one per process that writes
 *   DIR/step-00000120/DONE                     written last, by the main process
 *
 * A part holds, for each parameter tensor its process owns, the value under
 * the tensor's name and the AdamW moments under "NAME#adam_m" and
 * "NAME#adam_v", plus metadata: step, seed, and a checksum of its data area
 * (a flipped byte is found). Every parameter is saved whole by exactly one
 * process, so a run may resume on another rank layout. DONE is JSON: step,
 * seed, number of parts, the run's configuration (an object of strings that a
 * resuming run must match), its hyperparameters (a change is reported, not
 * refused) and its rank layout (recorded, free to change).
 * Only a checkpoint whose DONE parses is ever loaded; the data order is a
 * function of (seed, step), so (seed, step) is the data cursor, and training
 * draws no other random numbers.
 *
 * Writing: the main process empties the step directory, all processes
 * agree (a collective), each writes its part (temp file, fsync, rename),
 * all agree that every part was written, then the main process writes DONE
 * and prunes: complete checkpoints beyond the newest `keep`, and incomplete
 * ones older than the new one. CALM_TEST_CKPT_DELAY_MS=N waits N ms between
 * the parts and DONE (fault injection for the crash tests). */
#ifndef CALM_CHECKPOINT_H
#define CALM_CHECKPOINT_H

#include <stdint.h>

#include "src/train.h"

#define CKPT_DONE "DONE"

/* Collectives among the processes of a run; NULL functions: one process. */
typedef struct {
    void *ctx;
    long (*max)(void *ctx, long x); /* every process gets the maximum */
    long (*sum)(void *ctx, long x);
} CkptComm;

typedef struct CkptConfig {
    const char *dir;         /* checkpoint directory (created if missing) */
    long every;              /* write every N steps (0: only when stopped by a signal) */
    int keep;                /* complete checkpoints kept (>= 1) */
    int part;                /* this process's part number */
    int writes;              /* this process writes a part (owns parameters no other writer owns) */
    int is_main;             /* writes DONE and prunes */
    uint64_t seed;
    const char *config_json; /* {"key": value, ...}: what a resume must match (models, data, shapes) */
    const char *hyper_json;  /* the same for settings a resume may change (steps, lr): a warning */
    const char *layout;      /* rank layout, recorded in DONE */
    CkptComm comm;
} CkptConfig;

/* Collective. Write the checkpoint of s->step: t's own tensors (t->table)
 * and their moments. 0 on every process, or -1 on every process. */
int ckpt_write(const CkptConfig *c, const Trainable *t, const TrainState *s);

/* Collective. which = "auto": the newest complete checkpoint in c->dir that
 * every process can read and whose checksums hold (corrupt ones are
 * reported and skipped); otherwise the path of one step directory. Loads
 * this process's tensors (t->table) into t->params and the moments and step
 * into s. Returns 1 when loaded, 0 when "auto" found none (a fresh start),
 * -1 on error, e.g. a checkpoint from another configuration: the message
 * names what differs. */
int ckpt_resume(const CkptConfig *c, const Trainable *t, TrainState *s, const char *which);

/* Step directory name of a step: "step-00000120". */
void ckpt_step_name(long step, char *buf, size_t n);

#endif
