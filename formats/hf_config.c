/* hf_config.c : Hugging Face config.json for the llama, mistral and qwen2
 * families: defaults of transformers' configuration classes for absent keys,
 * both spellings of renamed keys (torch_dtype/dtype, rope_theta +
 * rope_scaling / rope_parameters, rope_type/type), strict value checks. */
#include "formats_internal.h"

#include <math.h>
#include <string.h>

#define CONFIG_MAX_BYTES (16u << 20)

static lq_status get_int(const char *label, const lq_json *o, const char *key, int64_t *v, bool required) {
    const lq_json *x = lq_json_get(o, key);
    if (!x || x->type == LQ_JSON_NULL) {
        LQ_RETURN_IF(required, LQ_ERR_FORMAT, "%s: \"%s\" is missing", label, key);
        return LQ_OK;
    }
    LQ_RETURN_IF(!lq_json_get_i64(x, v), LQ_ERR_FORMAT, "%s: \"%s\" is not an integer", label, key);
    return LQ_OK;
}

static lq_status get_num(const char *label, const lq_json *o, const char *key, double *v) {
    const lq_json *x = lq_json_get(o, key);
    if (!x || x->type == LQ_JSON_NULL) return LQ_OK;
    LQ_RETURN_IF(!lq_json_get_f64(x, v) || !isfinite(*v), LQ_ERR_FORMAT, "%s: \"%s\" is not a finite number", label,
                 key);
    return LQ_OK;
}

static lq_status get_bool(const char *label, const lq_json *o, const char *key, bool *v) {
    const lq_json *x = lq_json_get(o, key);
    if (!x || x->type == LQ_JSON_NULL) return LQ_OK;
    LQ_RETURN_IF(!lq_json_get_bool(x, v), LQ_ERR_FORMAT, "%s: \"%s\" is not true/false", label, key);
    return LQ_OK;
}

static lq_status dtype_from_torch(const char *label, const char *s, lq_dtype *out) {
    static const struct {
        const char *name;
        lq_dtype    t;
    } map[] = {{"float32", LQ_DTYPE_F32}, {"float16", LQ_DTYPE_F16},  {"bfloat16", LQ_DTYPE_BF16},
               {"float64", LQ_DTYPE_F64}, {"float", LQ_DTYPE_F32},    {"half", LQ_DTYPE_F16},
               {"double", LQ_DTYPE_F64},  {"float8_e4m3fn", LQ_DTYPE_F8_E4M3}, {"float8_e5m2", LQ_DTYPE_F8_E5M2}};
    if (strncmp(s, "torch.", 6) == 0) s += 6;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(s, map[i].name) == 0) {
            *out = map[i].t;
            return LQ_OK;
        }
    LQ_RETURN_IF(1, LQ_ERR_FORMAT, "%s: unknown dtype \"%s\"", label, s);
}

static lq_status parse_rope(const char *label, const lq_json *r, lq_model_config *c) {
    if (!r || r->type == LQ_JSON_NULL) return LQ_OK;
    LQ_RETURN_IF(r->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: rope scaling/parameters is not an object", label);
    const lq_json *t = lq_json_get(r, "rope_type");
    if (!t) t = lq_json_get(r, "type");
    const char *ts = t ? lq_json_get_str(t) : "default";
    LQ_RETURN_IF(!ts, LQ_ERR_FORMAT, "%s: rope_type is not a string", label);
    if (strcmp(ts, "default") == 0)
        c->rope_type = LQ_ROPE_DEFAULT;
    else if (strcmp(ts, "linear") == 0)
        c->rope_type = LQ_ROPE_LINEAR;
    else if (strcmp(ts, "dynamic") == 0)
        c->rope_type = LQ_ROPE_DYNAMIC;
    else if (strcmp(ts, "llama3") == 0)
        c->rope_type = LQ_ROPE_LLAMA3;
    else if (strcmp(ts, "yarn") == 0)
        c->rope_type = LQ_ROPE_YARN;
    else
        LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED, "%s: rope_type \"%s\" is not supported (default, linear, dynamic, llama3, yarn)",
                     label, ts);
    LQ_TRY(get_num(label, r, "rope_theta", &c->rope_theta));
    LQ_TRY(get_num(label, r, "factor", &c->rope_factor));
    LQ_TRY(get_num(label, r, "low_freq_factor", &c->rope_low_freq_factor));
    LQ_TRY(get_num(label, r, "high_freq_factor", &c->rope_high_freq_factor));
    LQ_TRY(get_int(label, r, "original_max_position_embeddings", &c->rope_original_max_pos, false));
    LQ_TRY(get_num(label, r, "attention_factor", &c->rope_attention_factor));
    LQ_TRY(get_num(label, r, "beta_fast", &c->rope_beta_fast));
    LQ_TRY(get_num(label, r, "beta_slow", &c->rope_beta_slow));
    if (c->rope_type != LQ_ROPE_DEFAULT)
        LQ_RETURN_IF(!(c->rope_factor >= 1.0), LQ_ERR_FORMAT, "%s: rope factor %g must be >= 1", label, c->rope_factor);
    return LQ_OK;
}

static lq_status parse_root(const char *label, const lq_json *o, lq_model_config *c) {
    LQ_RETURN_IF(o->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: not a JSON object", label);
    memset(c, 0, sizeof *c);
    const char *mt = lq_json_get_str(lq_json_get(o, "model_type"));
    LQ_RETURN_IF(!mt, LQ_ERR_FORMAT, "%s: \"model_type\" is missing", label);
    LQ_RETURN_IF(strcmp(mt, "llama") != 0 && strcmp(mt, "mistral") != 0 && strcmp(mt, "qwen2") != 0,
                 LQ_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (llama, mistral, qwen2)", label, mt);
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    const bool qwen = strcmp(mt, "qwen2") == 0, mistral = strcmp(mt, "mistral") == 0;
    const lq_json *arch = lq_json_get(o, "architectures");
    if (arch && arch->type == LQ_JSON_ARRAY && arch->n > 0 && arch->items[0].type == LQ_JSON_STRING)
        snprintf(c->architecture, sizeof c->architecture, "%s", arch->items[0].str);
    else
        snprintf(c->architecture, sizeof c->architecture, "%s", qwen ? "Qwen2ForCausalLM"
                                                                : mistral ? "MistralForCausalLM"
                                                                          : "LlamaForCausalLM");
    /* transformers' defaults */
    c->vocab_size              = qwen ? 151936 : 32000;
    c->hidden_size             = 4096;
    c->intermediate_size       = qwen ? 22016 : mistral ? 14336 : 11008;
    c->n_layers                = 32;
    c->n_heads                 = 32;
    c->n_kv_heads              = mistral ? 8 : -1;
    c->head_dim                = -1;
    c->max_position_embeddings = qwen ? 32768 : mistral ? 4096 * 32 : 2048;
    c->rms_norm_eps            = 1e-6;
    c->rope_theta              = 10000.0;
    c->bos_token_id            = 1;
    c->dtype                   = LQ_DTYPE_F32;
    snprintf(c->hidden_act, sizeof c->hidden_act, "silu");
    LQ_TRY(get_int(label, o, "vocab_size", &c->vocab_size, false));
    LQ_TRY(get_int(label, o, "hidden_size", &c->hidden_size, false));
    LQ_TRY(get_int(label, o, "intermediate_size", &c->intermediate_size, false));
    LQ_TRY(get_int(label, o, "num_hidden_layers", &c->n_layers, false));
    LQ_TRY(get_int(label, o, "num_attention_heads", &c->n_heads, false));
    LQ_TRY(get_int(label, o, "num_key_value_heads", &c->n_kv_heads, false));
    LQ_TRY(get_int(label, o, "head_dim", &c->head_dim, false));
    LQ_TRY(get_int(label, o, "max_position_embeddings", &c->max_position_embeddings, false));
    LQ_TRY(get_num(label, o, "rms_norm_eps", &c->rms_norm_eps));
    LQ_TRY(get_num(label, o, "rope_theta", &c->rope_theta));
    LQ_TRY(get_bool(label, o, "tie_word_embeddings", &c->tie_word_embeddings));
    LQ_TRY(get_bool(label, o, "attention_bias", &c->attention_bias));
    LQ_TRY(get_bool(label, o, "mlp_bias", &c->mlp_bias));
    if (qwen) c->attention_bias = true; /* Qwen2Attention: q/k/v always biased */
    /* rope: v5 rope_parameters (may carry rope_theta) or legacy rope_scaling */
    const lq_json *rp = lq_json_get(o, "rope_parameters");
    LQ_TRY(parse_rope(label, rp ? rp : lq_json_get(o, "rope_scaling"), c));
    /* sliding window: Mistral uses it; Qwen2 only with use_sliding_window */
    bool use_sw = !qwen;
    LQ_TRY(get_bool(label, o, "use_sliding_window", &use_sw));
    if (use_sw) LQ_TRY(get_int(label, o, "sliding_window", &c->sliding_window, false));
    LQ_TRY(get_int(label, o, "bos_token_id", &c->bos_token_id, false));
    const lq_json *eos = lq_json_get(o, "eos_token_id");
    if (eos && eos->type == LQ_JSON_ARRAY) {
        LQ_RETURN_IF(eos->n > 8, LQ_ERR_UNSUPPORTED, "%s: more than 8 eos_token_id values", label);
        for (uint32_t i = 0; i < eos->n; i++)
            LQ_RETURN_IF(!lq_json_get_i64(&eos->items[i], &c->eos_token_id[i]), LQ_ERR_FORMAT,
                         "%s: eos_token_id[%u] is not an integer", label, i);
        c->n_eos = (int32_t)eos->n;
    } else if (eos && eos->type != LQ_JSON_NULL) {
        LQ_RETURN_IF(!lq_json_get_i64(eos, &c->eos_token_id[0]), LQ_ERR_FORMAT, "%s: eos_token_id is not an integer",
                     label);
        c->n_eos = 1;
    } else if (!eos) {
        c->eos_token_id[0] = 2;
        c->n_eos           = 1;
    }
    const lq_json *dt = lq_json_get(o, "dtype");
    if (!dt || dt->type == LQ_JSON_NULL) dt = lq_json_get(o, "torch_dtype");
    if (dt && dt->type != LQ_JSON_NULL) {
        const char *s = lq_json_get_str(dt);
        LQ_RETURN_IF(!s, LQ_ERR_FORMAT, "%s: dtype is not a string", label);
        LQ_TRY(dtype_from_torch(label, s, &c->dtype));
    }
    const char *act = lq_json_get_str(lq_json_get(o, "hidden_act"));
    if (act) snprintf(c->hidden_act, sizeof c->hidden_act, "%s", act);
    LQ_RETURN_IF(strcmp(c->hidden_act, "silu") != 0, LQ_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (silu)",
                 label, c->hidden_act);
    if (c->n_kv_heads < 0) c->n_kv_heads = c->n_heads;
    LQ_RETURN_IF(c->vocab_size <= 0 || c->hidden_size <= 0 || c->intermediate_size <= 0 || c->n_layers <= 0 ||
                     c->n_heads <= 0 || c->n_kv_heads <= 0,
                 LQ_ERR_FORMAT, "%s: sizes must be positive", label);
    LQ_RETURN_IF(c->n_heads % c->n_kv_heads != 0, LQ_ERR_FORMAT,
                 "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", label,
                 (long long)c->n_heads, (long long)c->n_kv_heads);
    if (c->head_dim < 0) {
        LQ_RETURN_IF(c->hidden_size % c->n_heads != 0, LQ_ERR_FORMAT,
                     "%s: hidden_size %lld is not a multiple of num_attention_heads %lld and head_dim is absent", label,
                     (long long)c->hidden_size, (long long)c->n_heads);
        c->head_dim = c->hidden_size / c->n_heads;
    }
    LQ_RETURN_IF(c->head_dim <= 0 || c->head_dim % 2 != 0, LQ_ERR_FORMAT, "%s: head_dim %lld must be even and positive",
                 label, (long long)c->head_dim);
    LQ_RETURN_IF(!(c->rms_norm_eps > 0) || !(c->rope_theta > 0), LQ_ERR_FORMAT,
                 "%s: rms_norm_eps and rope_theta must be positive", label);
    return LQ_OK;
}

lq_status lq_hfconfig_parse(const char *json, size_t len, const char *label, lq_model_config *c) {
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    const lq_status s = lq_json_parse(json, len, NULL, &doc, &err);
    LQ_RETURN_IF(s == LQ_ERR_NOMEM, s, "%s: out of memory", label);
    LQ_RETURN_IF(s != LQ_OK, LQ_ERR_FORMAT, "%s: invalid JSON: %s", label, err.msg);
    const lq_status r = parse_root(label, lq_json_root(doc), c);
    lq_json_free(doc);
    return r;
}

lq_status lq_hfconfig_load(const char *path, lq_model_config *c) {
    char  *text;
    size_t len;
    LQ_TRY(lq__read_file(path, CONFIG_MAX_BYTES, &text, &len));
    const lq_status s = lq_hfconfig_parse(text, len, path, c);
    lq_free(text);
    return s;
}

static const char *rope_name(lq_rope_type t) {
    switch (t) {
    case LQ_ROPE_DEFAULT: return "default";
    case LQ_ROPE_LINEAR: return "linear";
    case LQ_ROPE_DYNAMIC: return "dynamic";
    case LQ_ROPE_LLAMA3: return "llama3";
    case LQ_ROPE_YARN: return "yarn";
    }
    return "default";
}

const char *lq__torch_dtype_name(lq_dtype t) {
    const lq_dtype_traits *tr = lq_dtype_traits_of(t);
    if (!tr || strncmp(tr->torch_name, "torch.", 6) != 0) return "float32";
    return tr->torch_name + 6;
}

lq_status lq_hfconfig_to_json(const lq_model_config *c, char **out, size_t *out_len) {
    lq_json_writer *w = lq_json_writer_init(2);
    LQ_RETURN_IF(!w, LQ_ERR_NOMEM, "out of memory");
    lq_json_obj_begin(w);
    lq_json_key(w, "architectures");
    lq_json_arr_begin(w);
    lq_json_str(w, c->architecture);
    lq_json_arr_end(w);
    lq_json_key(w, "model_type");
    lq_json_str(w, c->model_type);
    lq_json_key(w, "vocab_size");
    lq_json_i64(w, c->vocab_size);
    lq_json_key(w, "hidden_size");
    lq_json_i64(w, c->hidden_size);
    lq_json_key(w, "intermediate_size");
    lq_json_i64(w, c->intermediate_size);
    lq_json_key(w, "num_hidden_layers");
    lq_json_i64(w, c->n_layers);
    lq_json_key(w, "num_attention_heads");
    lq_json_i64(w, c->n_heads);
    lq_json_key(w, "num_key_value_heads");
    lq_json_i64(w, c->n_kv_heads);
    lq_json_key(w, "head_dim");
    lq_json_i64(w, c->head_dim);
    lq_json_key(w, "max_position_embeddings");
    lq_json_i64(w, c->max_position_embeddings);
    lq_json_key(w, "rms_norm_eps");
    lq_json_f64(w, c->rms_norm_eps);
    lq_json_key(w, "rope_theta");
    lq_json_f64(w, c->rope_theta);
    lq_json_key(w, "rope_scaling");
    if (c->rope_type == LQ_ROPE_DEFAULT) {
        lq_json_null(w);
    } else {
        lq_json_obj_begin(w);
        lq_json_key(w, "rope_type");
        lq_json_str(w, rope_name(c->rope_type));
        lq_json_key(w, "factor");
        lq_json_f64(w, c->rope_factor);
        if (c->rope_type == LQ_ROPE_LLAMA3) {
            lq_json_key(w, "low_freq_factor");
            lq_json_f64(w, c->rope_low_freq_factor);
            lq_json_key(w, "high_freq_factor");
            lq_json_f64(w, c->rope_high_freq_factor);
        }
        if (c->rope_original_max_pos > 0) {
            lq_json_key(w, "original_max_position_embeddings");
            lq_json_i64(w, c->rope_original_max_pos);
        }
        if (c->rope_type == LQ_ROPE_YARN) {
            if (c->rope_attention_factor > 0) {
                lq_json_key(w, "attention_factor");
                lq_json_f64(w, c->rope_attention_factor);
            }
            if (c->rope_beta_fast > 0) {
                lq_json_key(w, "beta_fast");
                lq_json_f64(w, c->rope_beta_fast);
            }
            if (c->rope_beta_slow > 0) {
                lq_json_key(w, "beta_slow");
                lq_json_f64(w, c->rope_beta_slow);
            }
        }
        lq_json_obj_end(w);
    }
    lq_json_key(w, "hidden_act");
    lq_json_str(w, c->hidden_act);
    lq_json_key(w, "tie_word_embeddings");
    lq_json_bool(w, c->tie_word_embeddings);
    lq_json_key(w, "bos_token_id");
    if (c->bos_token_id >= 0)
        lq_json_i64(w, c->bos_token_id);
    else
        lq_json_null(w);
    lq_json_key(w, "eos_token_id");
    if (c->n_eos == 1) {
        lq_json_i64(w, c->eos_token_id[0]);
    } else if (c->n_eos == 0) {
        lq_json_null(w);
    } else {
        lq_json_arr_begin(w);
        for (int32_t i = 0; i < c->n_eos; i++) lq_json_i64(w, c->eos_token_id[i]);
        lq_json_arr_end(w);
    }
    lq_json_key(w, "attention_bias");
    lq_json_bool(w, c->attention_bias);
    lq_json_key(w, "mlp_bias");
    lq_json_bool(w, c->mlp_bias);
    if (c->sliding_window > 0) {
        lq_json_key(w, "sliding_window");
        lq_json_i64(w, c->sliding_window);
    }
    lq_json_key(w, "torch_dtype");
    lq_json_str(w, lq__torch_dtype_name(c->dtype));
    lq_json_obj_end(w);
    return lq_json_writer_finish(w, out, out_len);
}
