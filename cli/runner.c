/* runner.c: a plain model (--model) or a composition (--calm) behind one
 * interface for eval, generate and forward (commands.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "src/modeldir.h"
#include "src/sample.h"
#include "src/tokenizer.h"

void runner_load(Runner *r, const char *cmd, const char *model_dir, const char *calm_dir) {
    memset(r, 0, sizeof *r);
    if ((model_dir != NULL) == (calm_dir != NULL)) {
        fprintf(stderr, "%s: give exactly one of --model DIR and --calm DIR\nTry '%s --help'.\n", cmd, cmd);
        exit(2);
    }
    if (model_dir) {
        if (model_load_dir_frozen(&r->B, model_dir) != 0) cli_fail(cmd);
        r->tok = tokenizer_load(model_dir);
    } else {
        if (compose_load_dir(&r->comp, calm_dir, &r->A, &r->B) != 0) cli_fail(cmd);
        r->composed = 1;
        r->tok = compose_load_tokenizer(calm_dir);
    }
    if (!r->tok) cli_fail(cmd);
    if (tokenizer_vocab_size(r->tok) > r->B.cfg.vocab_size) {
        calm_error("%s: the tokenizer (%s) has %d ids but the model's vocab_size is %d", model_dir ? model_dir : calm_dir,
                   tokenizer_id(r->tok), tokenizer_vocab_size(r->tok), r->B.cfg.vocab_size);
        cli_fail(cmd);
    }
}

void runner_free(Runner *r) {
    if (r->composed) {
        compose_free(&r->comp);
        model_free(&r->A);
    }
    model_free(&r->B);
    tokenizer_free(r->tok);
}

const ModelConfig *runner_config(const Runner *r) { return &r->B.cfg; }

float runner_forward(Runner *r, const int *tokens, const int *targets, const float *weights, int Bsz, int T) {
    if (r->composed) return compose_forward(&r->comp, tokens, targets, weights, Bsz, T);
    return model_forward(&r->B, tokens, targets, weights, Bsz, T, NULL, NULL);
}

const float *runner_logits(const Runner *r) { return r->B.acts.logits; }
const float *runner_losses(const Runner *r) { return r->B.acts.losses; }

long runner_generate_batch(Runner *r, GenSeq *seqs, int n, const GenOpts *o) {
    if (r->composed) return compose_generate_batch(&r->comp, seqs, n, o);
    return generate_batch(&r->B, seqs, n, o);
}

int runner_generate(Runner *r, const int *prompt, int n_prompt, int max_new, float temperature, int top_k,
                    uint64_t seed, int *out) {
    GenSeq s = {prompt, n_prompt, max_new, out, 0};
    GenOpts o = {temperature, top_k, seed, -1, tokenizer_vocab_size(r->tok), tokenizer_eos(r->tok)};
    runner_generate_batch(r, &s, 1, &o);
    return s.n_out;
}

int runner_max_context(const Runner *r) {
    int T = r->B.cfg.max_seq_len;
    if (r->composed && r->A.cfg.max_seq_len < T) T = r->A.cfg.max_seq_len;
    return T;
}
