/* lq_calib.h : calibration data (public; calib module, on top of core and
 * formats).
 *
 * A calibration set is n_samples windows of seq_len token ids, picked
 * reproducibly from one token stream. The stream, by kind:
 *   text      .txt, .txt.gz (gzip through zlib; concatenated members are read
 *             as one stream, as gzip -d does): the whole (decompressed)
 *             file is encoded in one call, lq_tokenizer_encode(tok, bytes,
 *             len, add_bos = false): no BOS, no splitting into documents,
 *             blank lines and newlines are text like any other. The only BOS
 *             is the one each window starts with (see Windows). The encoders
 *             are not quadratic: WikiText-2's 1.3 MB test split takes well
 *             under a second. One encode call takes at most 512 MiB.
 *   JSON Lines .jsonl, .jsonl.gz: every non-blank line (blank: only SP, TAB,
 *             CR) one JSON object (strict reader, RFC 8259) with a string
 *             field `text`, other fields ignored; each record is encoded on
 *             its own with add_bos = true (BOS first when the tokenizer has
 *             one, whatever prepend_bos says: it separates the records) and
 *             the records are concatenated in file order. A window whose
 *             offset falls on a record's start therefore begins BOS, BOS.
 *   tokens    .bin/.u16/.u32 raw little-endian uint16 (.u16 and .bin) or
 *             uint32 (.u32) ids, nothing else in the file; .npy (versions
 *             1.0, 2.0, 3.0; header dict read without eval; little-endian
 *             u1/u2/u4/u8/i1/i2/i4/i8 integer arrays, C order, 1-D or 2-D
 *             read row-major as one stream); .npz (zip, stored or deflated,
 *             through libzip: the array named `input_ids`, else `tokens`,
 *             else the only one). The ids are the stream as they are.
 * Every id must be >= 0 and < vocab_size (when given; <= INT32_MAX in any
 * case; the tokenizer's ids are checked too). The kind comes from the name (case-insensitive suffix);
 * other suffixes are refused with the list above.
 *
 * Windows: the stream has N tokens; with L = seq_len, window i starts at
 * offset o_i drawn uniformly from [0, N - L'] where L' = L - 1 when a BOS is
 * prepended (bos_id >= 0 and prepend_bos) else L; the window is [BOS] +
 * stream[o_i, o_i + L'). The draws, for i = 0 .. n_samples-1 in order, come
 * from one splitmix64 generator (state = seed; each output: state +=
 * 0x9E3779B97F4A7C15, z = state, z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9,
 * z = (z ^ z >> 27) * 0x94D049BB133111EB, output z ^ z >> 31); with
 * M = N - L' + 1, an output v below 2^64 mod M is rejected (another output
 * drawn: the biased range, as OpenBSD's arc4random_uniform), else
 * o_i = v mod M. So the same file, tokenizer and options give the same
 * windows on every machine. Windows may overlap and repeat. N < L' is an
 * error (LQ_ERR_INVALID_ARG naming the file and both counts). seq_len >= 2
 * when a BOS is prepended, >= 1 otherwise; n_samples >= 1.
 *
 * Every input byte is hostile: sizes overflow-checked, a decompressed size
 * limit (max_bytes bounds the file as read, except a .gz file, whose
 * decompressed content is bounded instead, and an .npz member's size),
 * JSON through the strict reader, .npy headers parsed without eval. Errors
 * are logged once, naming the file (and line: "file:LINE:" for JSON Lines):
 *   LQ_ERR_INVALID_ARG  bad parameters; text or JSON Lines without a
 *                       tokenizer; an id outside [0, vocab_size); a stream
 *                       shorter than one window
 *   LQ_ERR_UNSUPPORTED  an unknown suffix; a .npy dtype that is not one of
 *                       the integers above (float, bool, object, structured),
 *                       big-endian, Fortran order, not 1-D or 2-D; an
 *                       encrypted or otherwise compressed .npz member
 *   LQ_ERR_FORMAT       malformed content: .npy magic, version or header
 *                       dict, data size != prod(shape) * itemsize; corrupt
 *                       or truncated gzip or zip (CRC included); an .npz with
 *                       several arrays and none named input_ids or tokens;
 *                       a JSON Lines line that is not JSON, not an object,
 *                       or lacks a string `text`, a file without records; a
 *                       raw file that is not a whole number of ids; more
 *                       than max_bytes
 *   LQ_ERR_IO           the file cannot be opened or mapped
 *   LQ_ERR_NOMEM */
#ifndef LQ_CALIB_H
#define LQ_CALIB_H

#include "lq_common.h"
#include "lq_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LQ_CALIB_TEXT = 0, /* .txt, .txt.gz                     */
    LQ_CALIB_JSONL,    /* .jsonl, .jsonl.gz                 */
    LQ_CALIB_RAW_U16,  /* .bin, .u16                        */
    LQ_CALIB_RAW_U32,  /* .u32                              */
    LQ_CALIB_NPY,      /* .npy                              */
    LQ_CALIB_NPZ       /* .npz                              */
} lq_calib_kind;

const char *lq_calib_kind_name(lq_calib_kind k); /* "text", "jsonl", "u16", "u32", "npy", "npz" */
/* the kind from a file name; LQ_ERR_UNSUPPORTED (no log) for other suffixes */
lq_status lq_calib_kind_of(const char *path, lq_calib_kind *out);

typedef struct {
    int64_t  n_samples;   /* windows; 128                                               */
    int64_t  seq_len;     /* tokens per window, BOS included; 512                         */
    uint64_t seed;        /* 0                                                            */
    bool     prepend_bos; /* true: windows start with the tokenizer's BOS (when it has one) */
    int64_t  vocab_size;  /* > 0: every id (files' and tokenizer's) below it; 0 = unchecked */
    uint64_t max_bytes;   /* limit on the decompressed input in bytes; 0 = 4 GiB           */
} lq_calib_params;

lq_calib_params lq_calib_default_params(void);

typedef struct {
    lq_calib_kind kind;
    char          sha256[65];   /* lowercase hex sha256 of the input file's bytes as stored
                                   (of the .gz file itself, not of its content)             */
    uint64_t      file_bytes;   /* size of the input file as stored                        */
    int64_t       n_stream;     /* N: tokens in the whole stream (no BOS added for text)   */
    int64_t       n_samples, seq_len;
    int32_t       bos_id;       /* the id put first in each window, or -1 when none         */
    int32_t      *tokens;       /* n_samples x seq_len ids                                 */
    int64_t      *offsets;      /* n_samples: stream offset of each window's first
                                   non-BOS token                                            */
} lq_calib_set;

/*! lq_calib_load() : read `path` and pick the windows. `tok` is required for
 *  text and JSON Lines (LQ_ERR_INVALID_ARG without one) and gives the BOS id
 *  for every kind (may be NULL for token files: then no BOS). `p` may be
 *  NULL (defaults). On LQ_OK *out is a new set (free with lq_calib_free);
 *  otherwise *out = NULL and nothing is kept. The file is mapped read-only
 *  and unmapped before returning. */
lq_status lq_calib_load(const char *path, const lq_tokenizer *tok, const lq_calib_params *p, lq_calib_set **out);
/*! lq_calib_from_tokens() : the same window choice over a token stream in
 *  memory (tests, callers with their own data): `bos_id` (-1: none) starts
 *  each window when p->prepend_bos; ids must lie in [0, vocab_size) (or be
 *  >= 0 when vocab_size is 0). kind = LQ_CALIB_RAW_U32, sha256 over the ids
 *  as little-endian uint32, file_bytes = 4 * n. `ids` is not kept. */
lq_status lq_calib_from_tokens(const int32_t *ids, int64_t n, int32_t bos_id, const lq_calib_params *p,
                               lq_calib_set **out);
void lq_calib_free(lq_calib_set *c); /* accepts NULL */


/* ==== activation histograms and range calibrators (REFERENCE.md 6.2) ====
 *
 * lq_hist: one tensor's statistics over a calibration set: count, min, max,
 * absmax; NVIDIA's histogram of |x| (pytorch-quantization / ModelOpt
 * HistogramCalibrator): the first batch sets n_bins bins over [0, max|x|];
 * a later batch with a larger max extends the edges at the same width to
 * ceil(max / width) bins, the old counts staying in the first bins; and,
 * when signed_hist, ONNX Runtime's symmetric histogram over [-th, th]
 * (HistogramCollector.merge_histogram: a larger threshold adds
 * floor((th' - th) / stride) + 1 bins on each side). Bin of x in [lo, hi]
 * with nb bins: (int64)((x - lo) * nb / (hi - lo)) in f64, x == hi in the
 * last bin (torch.histc's rule in f64; numpy's edge corrections are not
 * replicated). A batch of all zeros before any range exists is counted into
 * the first bin once the range is known. Counts are integers, so the
 * statistics do not depend on the thread count.
 *
 * Calibrators (lq_hist_amax): max (the running absmax); entropy (NVIDIA:
 * bins[0] = bins[1]; candidates i = start .. n_bins step stride; P =
 * bins[0..i) with the rest added to the last bin; Q = the i bins merged into
 * 2^(num_bits-1) levels (bin j -> floor(levels * j / i)), each level's count
 * spread evenly over its non-empty bins; KL(P||Q) of the normalized
 * distributions, no smoothing; the LAST minimum; amax = i * width);
 * entropy-ort (ONNX Runtime get_entropy_threshold on the signed histogram:
 * slices centred on the zero bin, outliers into both ends, merged into
 * num_quantized_bins groups (remainder to the last), Q expanded over non-zero
 * bins with integer division, P and Q smoothed with eps 1e-4, the FIRST
 * minimum, clamped to the observed [min, max]; amax = max(|lo|, |hi|));
 * percentile (the left edge of the first bin whose cdf >= p/100); mse (bin
 * centres from start_bin, the first minimum of sum count * (fakequant(c) -
 * c)^2, fakequant: round-half-even of c * 127/amax clamped to [-128, 127]). */
#include "lq_json.h"

#define LQ_HIST_DEFAULT_BINS 2048

typedef enum { LQ_AMAX_MAX = 0, LQ_AMAX_ENTROPY, LQ_AMAX_ENTROPY_ORT, LQ_AMAX_PERCENTILE, LQ_AMAX_MSE, LQ_AMAX_COUNT } lq_amax_method;

const char *lq_amax_method_name(lq_amax_method m); /* "max", "entropy", "entropy-ort", "percentile", "mse" */
/* LQ_ERR_INVALID_ARG (no log) for another name */
lq_status   lq_amax_method_from_name(const char *s, lq_amax_method *out);

typedef struct lq_hist lq_hist;

lq_status lq_hist_new(int64_t n_bins /* 0 = 2048 */, bool signed_hist, lq_hist **out);
void      lq_hist_free(lq_hist *h); /* accepts NULL */
/* add one batch (OpenMP counting); LQ_ERR_FORMAT on a non-finite value */
lq_status lq_hist_add(lq_hist *h, const float *x, int64_t n, int n_threads);

/* the same in two halves for counting elsewhere (the device): plan = the
 * ranges this batch must be counted over given its min and max; commit =
 * merge the counts (abs_r.n_bins of |x|, signed_r.n_bins of x). */
typedef struct { double lo, hi; int64_t n_bins; } lq_hist_range;
typedef struct { lq_hist_range abs_r, signed_r; bool has_signed; } lq_hist_batch_plan;
lq_status lq_hist_plan(lq_hist *h, float batch_min, float batch_max, lq_hist_batch_plan *plan);
lq_status lq_hist_commit(lq_hist *h, const lq_hist_batch_plan *plan, float batch_min, float batch_max, int64_t n,
                         const int64_t *abs_counts, const int64_t *signed_counts);
/* the binning (adds into counts): plain C and OpenMP, identical results */
void lq_histc_ref(const float *x, int64_t n, bool absval, const lq_hist_range *r, int64_t *counts);
void lq_histc_cpu(const float *x, int64_t n, bool absval, const lq_hist_range *r, int64_t *counts, int n_threads);

typedef struct {
    lq_amax_method method;
    double         percentile;             /* 99.99                         */
    int            num_bits;               /* 8                             */
    int            ort_num_quantized_bins; /* 128                           */
    int64_t        start_bin;              /* 128 (entropy, mse)            */
    int64_t        stride;                 /* 1                             */
} lq_amax_params;

lq_amax_params lq_amax_default_params(lq_amax_method m);
/*! lq_hist_amax() : the calibrated amax (> 0) and the chosen bin (-1 for max;
 *  entropy: i; entropy-ort: the half width i of the slice; percentile and
 *  mse: the bin index). LQ_ERR_INVALID_ARG for an empty histogram, bad
 *  parameters, or entropy-ort without the signed histogram. An all-zero
 *  tensor gives amax 1 (a scale that maps 0 to 0) with a warning. */
lq_status lq_hist_amax(const lq_hist *h, const lq_amax_params *p, double *amax, int64_t *bin);

int64_t        lq_hist_count(const lq_hist *h);
double         lq_hist_absmax(const lq_hist *h);
double         lq_hist_min(const lq_hist *h);
double         lq_hist_max(const lq_hist *h);
int64_t        lq_hist_n_bins(const lq_hist *h); /* |x| histogram; 0 before any non-zero value */
double         lq_hist_width(const lq_hist *h);
const int64_t *lq_hist_counts(const lq_hist *h);
bool           lq_hist_has_signed(const lq_hist *h);

/*! lq_entropy_search_ref() / lq_entropy_search() : NVIDIA's threshold search
 *  on raw counts (as above; counts are not modified): the literal algorithm
 *  in f64 (O(n_bins^2)), and a prefix-sum version (O(n_bins * levels)) whose
 *  near-minimal candidates are re-evaluated literally, so both pick the same
 *  bin. *best_kl may be INFINITY when every candidate is. */
lq_status lq_entropy_search_ref(const int64_t *counts, int64_t n_bins, int n_levels, int64_t start, int64_t stride,
                                int64_t *best_i, double *best_kl);
lq_status lq_entropy_search(const int64_t *counts, int64_t n_bins, int n_levels, int64_t start, int64_t stride,
                            int64_t *best_i, double *best_kl);
/* ONNX Runtime's search on a signed histogram of n_bins over [-th, th]; *half = the chosen i */
lq_status lq_entropy_ort_search(const int64_t *counts, int64_t n_bins, double th, double mn, double mx,
                                int num_quantized_bins, double *amax, int64_t *half);

/*! lq_trt_cache_write() : a TensorRT calibration cache (REFERENCE.md 5.4):
 *  "TRT-<version>-EntropyCalibration2", then "name: %08x" with the f32 bits
 *  of amax/127 per tensor. Atomic. */
lq_status lq_trt_cache_write(const char *path, int trt_version, const char *const *names, const double *amax, int64_t n);
/* the histogram as JSON members into an open object-less position:
 * {"n_bins", "width", "count", "absmax", "min", "max", "counts": [...],
 *  "signed": {"threshold", "counts"} when present} */
lq_status lq_hist_write_json(const lq_hist *h, lq_json_writer *w);

#ifdef __cplusplus
}
#endif
#endif /* LQ_CALIB_H */
