/* tokenizer_hf_parts.h: reading the parts of a tokenizer.json around its
 * model (normalizer, pre-tokenizer, post-processor, decoder, added-token
 * trie) and the model directory's BOS / EOS configuration
 * (tokenizer_hf_parts.c). Private to src/tokenizer_hf*.c. */
#ifndef CALM_TOKENIZER_HF_PARTS_H
#define CALM_TOKENIZER_HF_PARTS_H

#include <cjson/cJSON.h>

#include "src/tokenizer_hf.h"

/* o[key] as a string (NULL when absent or not a string) or a bool. */
const char *hf_str(const cJSON *o, const char *key);
int hf_bool(const cJSON *o, const char *key, int dflt);

/* Each returns 0, or -1 after calm_error naming h->path and the part. A
 * NULL or JSON null part is "none". */
int hf_parse_norm(HfTok *h, const cJSON *j);
int hf_parse_pre(HfTok *h, const cJSON *j);
int hf_parse_post(HfTok *h, const cJSON *j);
int hf_parse_dec(HfTok *h, const cJSON *j);
void hf_build_trie(HfTok *h);
/* tokenizer_config.json and config.json in dir, both optional. */
int hf_load_configs(HfTok *h, const char *dir);
void hf_free_parts(HfTok *h);

#endif
