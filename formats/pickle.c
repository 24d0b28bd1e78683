/* pickle.c : a restricted pickle machine for torch.save() state_dicts.
 *
 * Interprets the opcodes of pickle protocol 2 that torch.save() emits, plus
 * the protocol 4 additions (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL,
 * BINUNICODE8, NEWOBJ), on a private stack, mark stack and memo; every other
 * opcode is an error naming it and its byte offset. Nothing is executed:
 * GLOBAL/STACK_GLOBAL resolve only the state_dict whitelist (the model of
 * torch.load(weights_only=True)), REDUCE on a whitelisted callable builds a
 * dict or a tensor record, BINPERSID builds a storage reference, BUILD
 * discards its state. Every object lives on the machine's own heap and is
 * freed in one sweep, so shared (memoized) and cyclic references are safe;
 * nothing walks objects recursively. Limits: stack, marks and memo are
 * bounded (pickle_internal.h), every length is checked against the bytes
 * left, memory stays linear in the input size. */
#include "pickle_internal.h"

#include "lq_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== opcodes ==== */

enum {
    OP_MARK             = '(',
    OP_STOP             = '.',
    OP_BINFLOAT         = 'G',
    OP_BININT           = 'J',
    OP_BININT1          = 'K',
    OP_BININT2          = 'M',
    OP_NONE             = 'N',
    OP_BINPERSID        = 'Q',
    OP_REDUCE           = 'R',
    OP_BINUNICODE       = 'X',
    OP_APPEND           = 'a',
    OP_BUILD            = 'b',
    OP_GLOBAL           = 'c',
    OP_APPENDS          = 'e',
    OP_BINGET           = 'h',
    OP_LONG_BINGET      = 'j',
    OP_BINPUT           = 'q',
    OP_LONG_BINPUT      = 'r',
    OP_SETITEM          = 's',
    OP_TUPLE            = 't',
    OP_SETITEMS         = 'u',
    OP_EMPTY_TUPLE      = ')',
    OP_EMPTY_LIST       = ']',
    OP_EMPTY_DICT       = '}',
    OP_PROTO            = 0x80,
    OP_NEWOBJ           = 0x81,
    OP_TUPLE1           = 0x85,
    OP_TUPLE2           = 0x86,
    OP_TUPLE3           = 0x87,
    OP_NEWTRUE          = 0x88,
    OP_NEWFALSE         = 0x89,
    OP_LONG1            = 0x8a,
    OP_SHORT_BINUNICODE = 0x8c,
    OP_BINUNICODE8      = 0x8d,
    OP_STACK_GLOBAL     = 0x93,
    OP_MEMOIZE          = 0x94,
    OP_FRAME            = 0x95
};

/* names of every pickle opcode (Lib/pickletools.py), for error messages */
static const char *op_name(int op) {
    switch (op) {
    case '(': return "MARK";
    case '.': return "STOP";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'F': return "FLOAT";
    case 'I': return "INT";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'L': return "LONG";
    case 'M': return "BININT2";
    case 'N': return "NONE";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'X': return "BINUNICODE";
    case 'a': return "APPEND";
    case 'b': return "BUILD";
    case 'c': return "GLOBAL";
    case 'd': return "DICT";
    case '}': return "EMPTY_DICT";
    case 'e': return "APPENDS";
    case 'g': return "GET";
    case 'h': return "BINGET";
    case 'i': return "INST";
    case 'j': return "LONG_BINGET";
    case 'l': return "LIST";
    case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";
    case 'p': return "PUT";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";
    case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return "not a pickle opcode";
    }
}

/* ==== whitelisted globals ==== */

typedef enum {
    W_ORDERED_DICT = 0,
    W_REBUILD_TENSOR_V2,
    W_REBUILD_PARAMETER,
    W_REBUILD_FROM_TYPE_V2,
    W_STORAGE
} wl_kind;

static const struct {
    const char *module;
    const char *name;
    wl_kind     kind;
    lq_dtype    dtype; /* W_STORAGE only */
} whitelist[] = {
    { "collections",   "OrderedDict",           W_ORDERED_DICT,         LQ_DTYPE_COUNT },
    { "torch._utils",  "_rebuild_tensor_v2",    W_REBUILD_TENSOR_V2,    LQ_DTYPE_COUNT },
    { "torch._utils",  "_rebuild_parameter",    W_REBUILD_PARAMETER,    LQ_DTYPE_COUNT },
    { "torch._tensor", "_rebuild_from_type_v2", W_REBUILD_FROM_TYPE_V2, LQ_DTYPE_COUNT },
    { "torch",         "FloatStorage",          W_STORAGE,              LQ_DTYPE_F32   },
    { "torch",         "HalfStorage",           W_STORAGE,              LQ_DTYPE_F16   },
    { "torch",         "BFloat16Storage",       W_STORAGE,              LQ_DTYPE_BF16  },
    { "torch",         "DoubleStorage",         W_STORAGE,              LQ_DTYPE_F64   },
    { "torch",         "LongStorage",           W_STORAGE,              LQ_DTYPE_I64   },
    { "torch",         "IntStorage",            W_STORAGE,              LQ_DTYPE_I32   },
    { "torch",         "ShortStorage",          W_STORAGE,              LQ_DTYPE_I16   },
    { "torch",         "CharStorage",           W_STORAGE,              LQ_DTYPE_I8    },
    { "torch",         "ByteStorage",           W_STORAGE,              LQ_DTYPE_U8    },
    { "torch",         "BoolStorage",           W_STORAGE,              LQ_DTYPE_BOOL  },
};
#define N_WHITELIST ((int32_t)(sizeof whitelist / sizeof whitelist[0]))

/* ==== objects ==== */

typedef enum {
    O_NONE = 0,
    O_BOOL,
    O_INT,
    O_BIGINT,  /* a LONG1 wider than 64 bits: kept opaque */
    O_FLOAT,
    O_STR,
    O_TUPLE,
    O_LIST,
    O_DICT,    /* items hold key, value, key, value, ...  */
    O_GLOBAL,  /* a whitelist entry                        */
    O_STORAGE,
    O_TENSOR
} obj_type;

typedef struct obj obj;
struct obj {
    obj_type type;
    union {
        int64_t i;                                    /* BOOL, INT              */
        double  f;                                    /* FLOAT                  */
        struct { const char *p; size_t len; } s;      /* STR: into the input    */
        struct { obj **items; size_t n, cap; } seq;   /* TUPLE, LIST, DICT      */
        int32_t g;                                    /* GLOBAL: whitelist index */
        struct {
            const char *key;
            size_t      key_len;
            lq_dtype    dtype;
            uint64_t    numel;
        } st;                                         /* STORAGE                */
        struct {
            const obj *storage;
            uint64_t   offset;
            int32_t    n_dims;
            int64_t    shape[LQ_MAX_DIMS];
            int64_t    stride[LQ_MAX_DIMS];
        } t;                                          /* TENSOR                 */
    } u;
};

static const char *type_name(obj_type t) {
    switch (t) {
    case O_NONE: return "None";
    case O_BOOL: return "bool";
    case O_INT: return "int";
    case O_BIGINT: return "int (> 64 bits)";
    case O_FLOAT: return "float";
    case O_STR: return "str";
    case O_TUPLE: return "tuple";
    case O_LIST: return "list";
    case O_DICT: return "dict";
    case O_GLOBAL: return "global";
    case O_STORAGE: return "storage";
    case O_TENSOR: return "tensor";
    }
    return "?";
}

/* ==== the machine ==== */

typedef struct {
    const uint8_t *buf;
    size_t         len;
    size_t         pos;
    size_t         op_off;     /* offset of the current opcode; SIZE_MAX after STOP */
    int            op;
    const char    *label;
    lq_status      st;         /* the first error, sticky                          */

    obj  **heap;               /* every object, freed in one sweep                 */
    size_t n_heap, cap_heap;
    obj  **stack;
    size_t n_stack, cap_stack;
    size_t *marks;             /* stack heights at each MARK                       */
    size_t  n_marks, cap_marks;
    obj  **memo;               /* NULL = unset slot                                */
    size_t n_memo, memo_count; /* slots allocated, slots set                       */
} vm;

static lq_status vm_fail(vm *m, lq_status st, const char *fmt, ...) LQ_PRINTF(3, 4);

static lq_status vm_fail(vm *m, lq_status st, const char *fmt, ...) {
    char    msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m->op_off != SIZE_MAX)
        lq__log(LQ_LOG_ERROR, "lq__pickle_state_dict", "%s: pickle: %s (data.pkl byte %zu)", m->label, msg,
                m->op_off);
    else
        lq__log(LQ_LOG_ERROR, "lq__pickle_state_dict", "%s: pickle: %s", m->label, msg);
    if (m->st == LQ_OK) m->st = st;
    return st;
}

/* printable rendering of untrusted bytes for messages, truncated */
static void escape_bytes(const char *s, size_t n, char *out, size_t out_size) {
    static const char hex[] = "0123456789abcdef";
    size_t            o     = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (o + 8 >= out_size) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* grow `*arr` (holding `used` elements of `elem` bytes, capacity `*cap`) to hold `need` */
static bool grow_array(void **arr, size_t *cap, size_t used, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2) return false;
        n *= 2;
    }
    size_t bytes;
    if (!lq__mul_size(n, elem, &bytes)) return false;
    void *q = lq_malloc(bytes);
    if (!q) return false;
    if (used) memcpy(q, *arr, used * elem);
    lq_free(*arr);
    *arr = q;
    *cap = n;
    return true;
}

static obj *new_obj(vm *m, obj_type t) {
    if (!grow_array((void **)&m->heap, &m->cap_heap, m->n_heap, m->n_heap + 1, sizeof(obj *))) {
        vm_fail(m, LQ_ERR_NOMEM, "out of memory");
        return NULL;
    }
    obj *o = lq_calloc(1, sizeof *o);
    if (!o) {
        vm_fail(m, LQ_ERR_NOMEM, "out of memory");
        return NULL;
    }
    o->type             = t;
    m->heap[m->n_heap++] = o;
    return o;
}

static void vm_free(vm *m) {
    for (size_t i = 0; i < m->n_heap; i++) {
        obj *o = m->heap[i];
        if (o->type == O_TUPLE || o->type == O_LIST || o->type == O_DICT) lq_free(o->u.seq.items);
        lq_free(o);
    }
    lq_free(m->heap);
    lq_free(m->stack);
    lq_free(m->marks);
    lq_free(m->memo);
    memset(m, 0, sizeof *m);
}

static size_t frame_base(const vm *m) { return m->n_marks ? m->marks[m->n_marks - 1] : 0; }

static lq_status push(vm *m, obj *o) {
    if (!o) return m->st;
    if (m->n_stack >= LQ__PICKLE_MAX_STACK)
        return vm_fail(m, LQ_ERR_FORMAT, "stack deeper than %u items", LQ__PICKLE_MAX_STACK);
    if (!grow_array((void **)&m->stack, &m->cap_stack, m->n_stack, m->n_stack + 1, sizeof(obj *)))
        return vm_fail(m, LQ_ERR_NOMEM, "out of memory");
    m->stack[m->n_stack++] = o;
    return LQ_OK;
}

static lq_status pop(vm *m, obj **out) {
    if (m->n_stack <= frame_base(m))
        return vm_fail(m, LQ_ERR_FORMAT, "stack underflow in %s", op_name(m->op));
    *out = m->stack[--m->n_stack];
    return LQ_OK;
}

/* the top of the current frame, without popping */
static lq_status top(vm *m, obj **out) {
    if (m->n_stack <= frame_base(m))
        return vm_fail(m, LQ_ERR_FORMAT, "stack underflow in %s", op_name(m->op));
    *out = m->stack[m->n_stack - 1];
    return LQ_OK;
}

/* pops the innermost MARK; the items above it are stack[*k .. n_stack) */
static lq_status pop_mark(vm *m, size_t *k) {
    if (m->n_marks == 0) return vm_fail(m, LQ_ERR_FORMAT, "%s without a MARK", op_name(m->op));
    *k = m->marks[--m->n_marks];
    return LQ_OK;
}

static lq_status take(vm *m, size_t n, const uint8_t **p) {
    if (m->len - m->pos < n)
        return vm_fail(m, LQ_ERR_FORMAT, "truncated: %s needs %zu bytes, %zu left", op_name(m->op), n,
                       m->len - m->pos);
    *p = m->buf + m->pos;
    m->pos += n;
    return LQ_OK;
}

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static lq_status push_int(vm *m, int64_t v) {
    obj *o = new_obj(m, O_INT);
    if (o) o->u.i = v;
    return push(m, o);
}

static lq_status push_str(vm *m, size_t n) {
    const uint8_t *p = NULL;
    LQ_TRY(take(m, n, &p));
    obj *o = new_obj(m, O_STR);
    if (o) {
        o->u.s.p   = (const char *)p;
        o->u.s.len = n;
    }
    return push(m, o);
}

static obj *new_seq(vm *m, obj_type t, obj *const *items, size_t n) {
    obj *o = new_obj(m, t);
    if (!o) return NULL;
    if (n) {
        o->u.seq.items = lq_malloc(n * sizeof(obj *)); /* n <= stack size: no overflow */
        if (!o->u.seq.items) {
            vm_fail(m, LQ_ERR_NOMEM, "out of memory");
            return NULL;
        }
        memcpy(o->u.seq.items, items, n * sizeof(obj *));
        o->u.seq.n = o->u.seq.cap = n;
    }
    return o;
}

/* appends `n` items to a LIST or DICT (DICT: key/value pairs flattened) */
static lq_status seq_extend(vm *m, obj *o, obj *const *items, size_t n) {
    if (!grow_array((void **)&o->u.seq.items, &o->u.seq.cap, o->u.seq.n, o->u.seq.n + n, sizeof(obj *)))
        return vm_fail(m, LQ_ERR_NOMEM, "out of memory");
    if (n) memcpy(o->u.seq.items + o->u.seq.n, items, n * sizeof(obj *));
    o->u.seq.n += n;
    return LQ_OK;
}

static lq_status memo_put(vm *m, uint64_t idx) {
    obj *o;
    LQ_TRY(top(m, &o));
    if (idx >= LQ__PICKLE_MAX_MEMO || idx >= m->len)
        return vm_fail(m, LQ_ERR_FORMAT, "memo index %llu out of range", (unsigned long long)idx);
    if (idx >= m->n_memo) {
        size_t cap = m->n_memo;
        if (!grow_array((void **)&m->memo, &cap, m->n_memo, (size_t)idx + 1, sizeof(obj *)))
            return vm_fail(m, LQ_ERR_NOMEM, "out of memory");
        for (size_t i = m->n_memo; i < cap; i++) m->memo[i] = NULL;
        m->n_memo = cap;
    }
    if (!m->memo[idx]) m->memo_count++;
    m->memo[idx] = o;
    return LQ_OK;
}

static lq_status memo_get(vm *m, uint64_t idx) {
    if (idx >= m->n_memo || !m->memo[idx])
        return vm_fail(m, LQ_ERR_FORMAT, "memo index %llu is not set", (unsigned long long)idx);
    return push(m, m->memo[idx]);
}

static lq_status push_global(vm *m, const char *mod, size_t mod_len, const char *name, size_t name_len) {
    for (int32_t i = 0; i < N_WHITELIST; i++) {
        if (strlen(whitelist[i].module) == mod_len && memcmp(whitelist[i].module, mod, mod_len) == 0 &&
            strlen(whitelist[i].name) == name_len && memcmp(whitelist[i].name, name, name_len) == 0) {
            obj *o = new_obj(m, O_GLOBAL);
            if (o) o->u.g = i;
            return push(m, o);
        }
    }
    char emod[128], ename[128];
    escape_bytes(mod, mod_len, emod, sizeof emod);
    escape_bytes(name, name_len, ename, sizeof ename);
    return vm_fail(m, LQ_ERR_FORMAT, "global '%s.%s' is not allowed (only state_dict globals are)", emod, ename);
}

/* GLOBAL: "module\nname\n" */
static lq_status op_global(vm *m) {
    const char *part[2];
    size_t      plen[2];
    for (int k = 0; k < 2; k++) {
        const size_t   left = m->len - m->pos;
        const size_t   span = LQ_MIN(left, (size_t)LQ__PICKLE_MAX_GLOBAL + 1);
        const uint8_t *nl   = memchr(m->buf + m->pos, '\n', span);
        if (!nl)
            return vm_fail(m, LQ_ERR_FORMAT, "GLOBAL %s is not a line of at most %d bytes", k ? "name" : "module",
                           LQ__PICKLE_MAX_GLOBAL);
        part[k] = (const char *)(m->buf + m->pos);
        plen[k] = (size_t)(nl - (m->buf + m->pos));
        m->pos += plen[k] + 1;
    }
    return push_global(m, part[0], plen[0], part[1], plen[1]);
}

static lq_status op_stack_global(vm *m) {
    obj *name, *mod;
    LQ_TRY(pop(m, &name));
    LQ_TRY(pop(m, &mod));
    if (name->type != O_STR || mod->type != O_STR)
        return vm_fail(m, LQ_ERR_FORMAT, "STACK_GLOBAL needs two str, got %s and %s", type_name(mod->type),
                       type_name(name->type));
    return push_global(m, mod->u.s.p, mod->u.s.len, name->u.s.p, name->u.s.len);
}

static bool str_eq(const obj *o, const char *s) {
    return o->type == O_STR && o->u.s.len == strlen(s) && memcmp(o->u.s.p, s, o->u.s.len) == 0;
}

/* the int tuple `o` (size or stride) into `dst`; n_dims checked by the caller */
static lq_status int_tuple(vm *m, const obj *o, const char *what, int64_t *dst) {
    for (size_t i = 0; i < o->u.seq.n; i++) {
        const obj *v = o->u.seq.items[i];
        if (v->type != O_INT || v->u.i < 0)
            return vm_fail(m, LQ_ERR_FORMAT, "tensor %s[%zu] is not a non-negative int (%s)", what, i,
                           type_name(v->type));
        dst[i] = v->u.i;
    }
    return LQ_OK;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
static lq_status rebuild_tensor(vm *m, const obj *args, obj **out) {
    const size_t n = args->u.seq.n;
    if (n != 6 && n != 7)
        return vm_fail(m, LQ_ERR_FORMAT, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu", n);
    obj *const *a = args->u.seq.items;
    if (a[0]->type != O_STORAGE)
        return vm_fail(m, LQ_ERR_FORMAT, "_rebuild_tensor_v2: argument 1 is a %s, not a storage",
                       type_name(a[0]->type));
    if (a[1]->type != O_INT || a[1]->u.i < 0)
        return vm_fail(m, LQ_ERR_FORMAT, "_rebuild_tensor_v2: storage offset is not a non-negative int");
    if (a[2]->type != O_TUPLE || a[3]->type != O_TUPLE)
        return vm_fail(m, LQ_ERR_FORMAT, "_rebuild_tensor_v2: size and stride must be tuples (%s, %s)",
                       type_name(a[2]->type), type_name(a[3]->type));
    if (a[2]->u.seq.n != a[3]->u.seq.n)
        return vm_fail(m, LQ_ERR_FORMAT, "_rebuild_tensor_v2: size has %zu dims, stride %zu", a[2]->u.seq.n,
                       a[3]->u.seq.n);
    if (a[2]->u.seq.n > LQ_MAX_DIMS)
        return vm_fail(m, LQ_ERR_FORMAT, "_rebuild_tensor_v2: %zu dims, at most %d supported", a[2]->u.seq.n,
                       LQ_MAX_DIMS);
    obj *t = new_obj(m, O_TENSOR);
    if (!t) return m->st;
    t->u.t.storage = a[0];
    t->u.t.offset  = (uint64_t)a[1]->u.i;
    t->u.t.n_dims  = (int32_t)a[2]->u.seq.n;
    LQ_TRY(int_tuple(m, a[2], "size", t->u.t.shape));
    LQ_TRY(int_tuple(m, a[3], "stride", t->u.t.stride));
    *out = t;
    return LQ_OK;
}

/* the result of calling whitelist entry `g` with the tuple `args` */
static lq_status call(vm *m, int32_t g, const obj *args, int depth, obj **out) {
    obj *const  *a = args->u.seq.items;
    const size_t n = args->u.seq.n;
    switch (whitelist[g].kind) {
    case W_ORDERED_DICT:
        if (n != 0) return vm_fail(m, LQ_ERR_FORMAT, "collections.OrderedDict called with %zu arguments", n);
        *out = new_obj(m, O_DICT);
        return *out ? LQ_OK : m->st;
    case W_REBUILD_TENSOR_V2:
        return rebuild_tensor(m, args, out);
    case W_REBUILD_PARAMETER:
        /* _rebuild_parameter(data, requires_grad, backward_hooks): the data is the tensor */
        if (n != 3 || a[0]->type != O_TENSOR)
            return vm_fail(m, LQ_ERR_FORMAT, "_rebuild_parameter needs (tensor, requires_grad, hooks)");
        *out = a[0];
        return LQ_OK;
    case W_REBUILD_FROM_TYPE_V2:
        /* _rebuild_from_type_v2(func, new_type, args, state): func(*args); type and state are dropped */
        if (n != 4 || a[0]->type != O_GLOBAL || a[2]->type != O_TUPLE || depth > 0)
            return vm_fail(m, LQ_ERR_FORMAT, "_rebuild_from_type_v2 needs (rebuild function, type, tuple, state)");
        if (whitelist[a[0]->u.g].kind != W_REBUILD_TENSOR_V2 && whitelist[a[0]->u.g].kind != W_REBUILD_PARAMETER)
            return vm_fail(m, LQ_ERR_FORMAT, "_rebuild_from_type_v2 with %s.%s", whitelist[a[0]->u.g].module,
                           whitelist[a[0]->u.g].name);
        LQ_TRY(call(m, a[0]->u.g, a[2], depth + 1, out));
        if ((*out)->type != O_TENSOR) return vm_fail(m, LQ_ERR_FORMAT, "_rebuild_from_type_v2 built no tensor");
        return LQ_OK;
    case W_STORAGE:
        return vm_fail(m, LQ_ERR_FORMAT, "torch.%s may only appear in a persistent id", whitelist[g].name);
    }
    return vm_fail(m, LQ_ERR_FORMAT, "bad whitelist entry");
}

static lq_status op_reduce(vm *m) {
    obj *args, *fn, *res = NULL;
    LQ_TRY(pop(m, &args));
    LQ_TRY(pop(m, &fn));
    if (fn->type != O_GLOBAL)
        return vm_fail(m, LQ_ERR_FORMAT, "REDUCE calls a %s, not a whitelisted global", type_name(fn->type));
    if (args->type != O_TUPLE)
        return vm_fail(m, LQ_ERR_FORMAT, "REDUCE arguments are a %s, not a tuple", type_name(args->type));
    LQ_TRY(call(m, fn->u.g, args, 0, &res));
    return push(m, res);
}

/* NEWOBJ: cls.__new__(cls, *args); only OrderedDict() */
static lq_status op_newobj(vm *m) {
    obj *args, *cls;
    LQ_TRY(pop(m, &args));
    LQ_TRY(pop(m, &cls));
    if (cls->type != O_GLOBAL || whitelist[cls->u.g].kind != W_ORDERED_DICT || args->type != O_TUPLE ||
        args->u.seq.n != 0)
        return vm_fail(m, LQ_ERR_FORMAT, "NEWOBJ is only supported for collections.OrderedDict()");
    return push(m, new_obj(m, O_DICT));
}

static bool valid_key(const char *s, size_t n) {
    if (n == 0 || n > LQ__PICKLE_MAX_KEY) return false;
    for (size_t i = 0; i < n; i++) {
        const char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* BINPERSID: ('storage', StorageClass, key, location, numel) */
static lq_status op_binpersid(vm *m) {
    obj *pid;
    LQ_TRY(pop(m, &pid));
    if (pid->type != O_TUPLE || pid->u.seq.n != 5 || !str_eq(pid->u.seq.items[0], "storage"))
        return vm_fail(m, LQ_ERR_FORMAT, "persistent id is not ('storage', class, key, location, numel)");
    obj *const *a = pid->u.seq.items;
    if (a[1]->type != O_GLOBAL || whitelist[a[1]->u.g].kind != W_STORAGE)
        return vm_fail(m, LQ_ERR_FORMAT, "persistent id: storage class is a %s, not a torch storage type",
                       type_name(a[1]->type));
    if (a[2]->type != O_STR || !valid_key(a[2]->u.s.p, a[2]->u.s.len)) {
        char k[96] = "";
        if (a[2]->type == O_STR) escape_bytes(a[2]->u.s.p, a[2]->u.s.len, k, sizeof k);
        return vm_fail(m, LQ_ERR_FORMAT, "persistent id: storage key '%s' is not 1-%d of [A-Za-z0-9_-]", k,
                       LQ__PICKLE_MAX_KEY);
    }
    if (a[4]->type != O_INT || a[4]->u.i < 0)
        return vm_fail(m, LQ_ERR_FORMAT, "persistent id: storage size is not a non-negative int");
    obj *o = new_obj(m, O_STORAGE);
    if (o) {
        o->u.st.key     = a[2]->u.s.p;
        o->u.st.key_len = a[2]->u.s.len;
        o->u.st.dtype   = whitelist[a[1]->u.g].dtype;
        o->u.st.numel   = (uint64_t)a[4]->u.i;
    }
    return push(m, o);
}

/* SETITEMS / APPENDS: the container sits just below the MARK */
static lq_status op_setitems(vm *m, obj_type want) {
    size_t k = 0;
    LQ_TRY(pop_mark(m, &k));
    const size_t n = m->n_stack - k;
    if (k <= frame_base(m)) return vm_fail(m, LQ_ERR_FORMAT, "%s with nothing below its MARK", op_name(m->op));
    obj *c = m->stack[k - 1];
    if (c->type != want)
        return vm_fail(m, LQ_ERR_FORMAT, "%s on a %s, not a %s", op_name(m->op), type_name(c->type),
                       type_name(want));
    if (want == O_DICT && n % 2)
        return vm_fail(m, LQ_ERR_FORMAT, "SETITEMS with an odd number (%zu) of items", n);
    LQ_TRY(seq_extend(m, c, m->stack + k, n));
    m->n_stack = k;
    return LQ_OK;
}

/* SETITEM (2 items) / APPEND (1 item) */
static lq_status op_setitem(vm *m, obj_type want, size_t n) {
    if (m->n_stack - frame_base(m) < n + 1)
        return vm_fail(m, LQ_ERR_FORMAT, "stack underflow in %s", op_name(m->op));
    obj *c = m->stack[m->n_stack - n - 1];
    if (c->type != want)
        return vm_fail(m, LQ_ERR_FORMAT, "%s on a %s, not a %s", op_name(m->op), type_name(c->type),
                       type_name(want));
    LQ_TRY(seq_extend(m, c, m->stack + m->n_stack - n, n));
    m->n_stack -= n;
    return LQ_OK;
}

static lq_status op_tuple_n(vm *m, size_t n) {
    if (m->n_stack - frame_base(m) < n) return vm_fail(m, LQ_ERR_FORMAT, "stack underflow in %s", op_name(m->op));
    obj *t = new_seq(m, O_TUPLE, m->stack + m->n_stack - n, n);
    if (!t) return m->st;
    m->n_stack -= n;
    return push(m, t);
}

/* one opcode; *done set by STOP with the result in *result */
static lq_status step(vm *m, bool *done, obj **result) {
    const uint8_t *p = NULL;
    m->op_off = m->pos;
    m->op     = m->buf[m->pos++];
    switch (m->op) {
    case OP_PROTO:
        LQ_TRY(take(m, 1, &p));
        if (p[0] > 5) return vm_fail(m, LQ_ERR_UNSUPPORTED, "pickle protocol %u (at most 5 is known)", p[0]);
        return LQ_OK;
    case OP_FRAME:
        LQ_TRY(take(m, 8, &p));
        if (rd_le(p, 8) > m->len - m->pos)
            return vm_fail(m, LQ_ERR_FORMAT, "FRAME of %llu bytes, %zu left", (unsigned long long)rd_le(p, 8),
                           m->len - m->pos);
        return LQ_OK;
    case OP_STOP:
        LQ_TRY(pop(m, result));
        *done = true;
        return LQ_OK;
    case OP_MARK:
        if (m->n_marks >= LQ__PICKLE_MAX_MARKS)
            return vm_fail(m, LQ_ERR_FORMAT, "more than %u nested MARKs", LQ__PICKLE_MAX_MARKS);
        if (!grow_array((void **)&m->marks, &m->cap_marks, m->n_marks, m->n_marks + 1, sizeof(size_t)))
            return vm_fail(m, LQ_ERR_NOMEM, "out of memory");
        m->marks[m->n_marks++] = m->n_stack;
        return LQ_OK;
    case OP_EMPTY_DICT: return push(m, new_obj(m, O_DICT));
    case OP_EMPTY_LIST: return push(m, new_obj(m, O_LIST));
    case OP_EMPTY_TUPLE: return push(m, new_obj(m, O_TUPLE));
    case OP_TUPLE: {
        size_t k = 0;
        LQ_TRY(pop_mark(m, &k));
        obj *t = k < m->n_stack ? new_seq(m, O_TUPLE, m->stack + k, m->n_stack - k) : new_obj(m, O_TUPLE);
        if (!t) return m->st;
        m->n_stack = k;
        return push(m, t);
    }
    case OP_TUPLE1: return op_tuple_n(m, 1);
    case OP_TUPLE2: return op_tuple_n(m, 2);
    case OP_TUPLE3: return op_tuple_n(m, 3);
    case OP_GLOBAL: return op_global(m);
    case OP_STACK_GLOBAL: return op_stack_global(m);
    case OP_REDUCE: return op_reduce(m);
    case OP_NEWOBJ: return op_newobj(m);
    case OP_BUILD: {
        /* obj.__setstate__(state) is never run: the state (e.g. an
         * OrderedDict's _metadata attribute) is dropped */
        obj *state, *target;
        LQ_TRY(pop(m, &state));
        return top(m, &target);
    }
    case OP_BINPERSID: return op_binpersid(m);
    case OP_BINUNICODE:
        LQ_TRY(take(m, 4, &p));
        return push_str(m, (size_t)rd_le(p, 4));
    case OP_SHORT_BINUNICODE:
        LQ_TRY(take(m, 1, &p));
        return push_str(m, p[0]);
    case OP_BINUNICODE8: {
        LQ_TRY(take(m, 8, &p));
        const uint64_t n = rd_le(p, 8);
        if (n > m->len - m->pos)
            return vm_fail(m, LQ_ERR_FORMAT, "truncated: BINUNICODE8 of %llu bytes, %zu left",
                           (unsigned long long)n, m->len - m->pos);
        return push_str(m, (size_t)n);
    }
    case OP_BININT: {
        LQ_TRY(take(m, 4, &p));
        const uint32_t u = (uint32_t)rd_le(p, 4);
        return push_int(m, u >= 0x80000000u ? (int64_t)u - (int64_t)0x100000000LL : (int64_t)u);
    }
    case OP_BININT1:
        LQ_TRY(take(m, 1, &p));
        return push_int(m, p[0]);
    case OP_BININT2:
        LQ_TRY(take(m, 2, &p));
        return push_int(m, (int64_t)rd_le(p, 2));
    case OP_LONG1: {
        LQ_TRY(take(m, 1, &p));
        const int n = p[0];
        LQ_TRY(take(m, (size_t)n, &p));
        if (n > 8) {
            obj *o = new_obj(m, O_BIGINT);
            return push(m, o);
        }
        uint64_t v = n ? rd_le(p, n) : 0;
        if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n);
        int64_t sv;
        memcpy(&sv, &v, sizeof sv); /* two's complement reinterpretation */
        return push_int(m, sv);
    }
    case OP_NEWTRUE:
    case OP_NEWFALSE: {
        obj *o = new_obj(m, O_BOOL);
        if (o) o->u.i = m->op == OP_NEWTRUE;
        return push(m, o);
    }
    case OP_NONE: return push(m, new_obj(m, O_NONE));
    case OP_BINFLOAT: {
        LQ_TRY(take(m, 8, &p));
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = u << 8 | p[i]; /* big-endian */
        obj *o = new_obj(m, O_FLOAT);
        if (o) memcpy(&o->u.f, &u, sizeof u);
        return push(m, o);
    }
    case OP_SETITEM: return op_setitem(m, O_DICT, 2);
    case OP_SETITEMS: return op_setitems(m, O_DICT);
    case OP_APPEND: return op_setitem(m, O_LIST, 1);
    case OP_APPENDS: return op_setitems(m, O_LIST);
    case OP_BINPUT:
        LQ_TRY(take(m, 1, &p));
        return memo_put(m, p[0]);
    case OP_LONG_BINPUT:
        LQ_TRY(take(m, 4, &p));
        return memo_put(m, rd_le(p, 4));
    case OP_MEMOIZE: return memo_put(m, m->memo_count);
    case OP_BINGET:
        LQ_TRY(take(m, 1, &p));
        return memo_get(m, p[0]);
    case OP_LONG_BINGET:
        LQ_TRY(take(m, 4, &p));
        return memo_get(m, rd_le(p, 4));
    default:
        return vm_fail(m, LQ_ERR_FORMAT, "opcode 0x%02x (%s) is not supported", m->op, op_name(m->op));
    }
}

/* ==== state_dict extraction ==== */

static const obj *dict_get(const obj *d, const char *key) {
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2)
        if (str_eq(d->u.seq.items[i], key)) return d->u.seq.items[i + 1];
    return NULL;
}

static bool dict_has_tensor(const obj *d) {
    for (size_t i = 1; i < d->u.seq.n; i += 2)
        if (d->u.seq.items[i]->type == O_TENSOR) return true;
    return false;
}

/* strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF */
static bool valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const unsigned c = s[i];
        size_t         k;
        uint32_t       cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k  = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k  = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k  = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i - 1 < k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

typedef struct {
    const char *s;
    size_t      len;
    int64_t     idx;
} sort_item;

static int cmp_item(const void *pa, const void *pb) {
    const sort_item *a = pa, *b = pb;
    const int        c = memcmp(a->s, b->s, LQ_MIN(a->len, b->len));
    if (c) return c;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static bool same_bytes(const sort_item *a, const sort_item *b) {
    return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

void lq__pickle_state_dict_free(lq__pt_state_dict *sd) {
    if (!sd) return;
    for (int64_t i = 0; i < sd->n_storages; i++) lq_free(sd->storages[i].key);
    for (int64_t i = 0; i < sd->n_records; i++) lq_free(sd->records[i].name);
    lq_free(sd->storages);
    lq_free(sd->records);
    memset(sd, 0, sizeof *sd);
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = lq_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* fills `out` from the root object (the dict, or the dict it wraps) */
static lq_status extract(vm *m, const obj *root, lq__pt_state_dict *out) {
    lq_status  st    = LQ_OK;
    sort_item *items = NULL;
    const obj **views = NULL;
    char       ename[128];

    if (root->type != O_DICT)
        return vm_fail(m, LQ_ERR_FORMAT, "the pickled object is a %s, not a dict (state_dict)",
                       type_name(root->type));
    const obj *d = root;
    static const char *const wrappers[] = { "state_dict", "model" };
    for (size_t w = 0; w < 2; w++) {
        const obj *v = dict_get(root, wrappers[w]);
        if (v && v->type == O_DICT && dict_has_tensor(v)) {
            LQ_LOG_INFO("%s: reading the state_dict under \"%s\"", m->label, wrappers[w]);
            d = v;
            break;
        }
    }

    size_t n_tensors = 0;
    for (size_t i = 1; i < d->u.seq.n; i += 2) n_tensors += d->u.seq.items[i]->type == O_TENSOR;
    if (n_tensors) {
        out->records = lq_calloc(n_tensors, sizeof *out->records);
        views        = lq_calloc(n_tensors, sizeof *views);
        items        = lq_calloc(n_tensors, sizeof *items);
        if (!out->records || !views || !items) {
            st = vm_fail(m, LQ_ERR_NOMEM, "out of memory for %zu tensors", n_tensors);
            goto done;
        }
    }
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const obj *k = d->u.seq.items[i], *v = d->u.seq.items[i + 1];
        if (k->type != O_STR) {
            if (v->type == O_TENSOR) LQ_LOG_WARN("%s: skipping a tensor under a %s key", m->label, type_name(k->type));
            continue;
        }
        escape_bytes(k->u.s.p, k->u.s.len, ename, sizeof ename);
        if (v->type == O_DICT) {
            LQ_LOG_WARN("%s: skipping '%s': a nested dict, not a tensor", m->label, ename);
            continue;
        }
        if (v->type != O_TENSOR) {
            LQ_LOG_DEBUG("%s: skipping '%s': a %s, not a tensor", m->label, ename, type_name(v->type));
            continue;
        }
        if (memchr(k->u.s.p, '\0', k->u.s.len) || !valid_utf8((const unsigned char *)k->u.s.p, k->u.s.len)) {
            st = vm_fail(m, LQ_ERR_FORMAT, "tensor name '%s' is not valid UTF-8 without NUL", ename);
            goto done;
        }
        lq__pt_record *r = &out->records[out->n_records];
        r->name          = dup_bytes(k->u.s.p, k->u.s.len);
        if (!r->name) {
            st = vm_fail(m, LQ_ERR_NOMEM, "out of memory");
            goto done;
        }
        r->offset = v->u.t.offset;
        r->n_dims = v->u.t.n_dims;
        memcpy(r->shape, v->u.t.shape, sizeof r->shape);
        memcpy(r->stride, v->u.t.stride, sizeof r->stride);
        views[out->n_records] = v;
        items[out->n_records] = (sort_item){ r->name, k->u.s.len, out->n_records };
        out->n_records++;
    }

    /* duplicate names (a dict cannot hold them; a crafted pickle can) */
    if (out->n_records > 1) qsort(items, (size_t)out->n_records, sizeof *items, cmp_item);
    for (int64_t i = 1; i < out->n_records; i++) {
        if (same_bytes(&items[i], &items[i - 1])) {
            escape_bytes(items[i].s, items[i].len, ename, sizeof ename);
            st = vm_fail(m, LQ_ERR_FORMAT, "duplicate tensor name '%s'", ename);
            goto done;
        }
    }

    /* storages, unique by key; every reference must agree on dtype and size */
    for (int64_t i = 0; i < out->n_records; i++) {
        const obj *s = views[i]->u.t.storage;
        items[i]     = (sort_item){ s->u.st.key, s->u.st.key_len, i };
    }
    if (out->n_records > 1) qsort(items, (size_t)out->n_records, sizeof *items, cmp_item);
    if (out->n_records) {
        out->storages = lq_calloc((size_t)out->n_records, sizeof *out->storages);
        if (!out->storages) {
            st = vm_fail(m, LQ_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    for (int64_t i = 0; i < out->n_records; i++) {
        const obj *s     = views[items[i].idx]->u.t.storage;
        if (i == 0 || !same_bytes(&items[i], &items[i - 1])) {
            lq__pt_storage *ps = &out->storages[out->n_storages++];
            ps->key            = dup_bytes(s->u.st.key, s->u.st.key_len);
            ps->dtype          = s->u.st.dtype;
            ps->numel          = s->u.st.numel;
            if (!ps->key) {
                st = vm_fail(m, LQ_ERR_NOMEM, "out of memory");
                goto done;
            }
        }
        const lq__pt_storage *ps = &out->storages[out->n_storages - 1];
        if (ps->dtype != s->u.st.dtype || ps->numel != s->u.st.numel) {
            escape_bytes(out->records[items[i].idx].name, strlen(out->records[items[i].idx].name), ename,
                         sizeof ename);
            st = vm_fail(m, LQ_ERR_FORMAT,
                         "tensor '%s': storage '%s' is referenced as %s x %llu and as %s x %llu elsewhere", ename,
                         ps->key, lq_dtype_name(s->u.st.dtype), (unsigned long long)s->u.st.numel,
                         lq_dtype_name(ps->dtype), (unsigned long long)ps->numel);
            goto done;
        }
        out->records[items[i].idx].storage = out->n_storages - 1;
    }

done:
    lq_free(items);
    lq_free(views);
    return st;
}

lq_status lq__pickle_state_dict(const uint8_t *buf, size_t len, const char *label, lq__pt_state_dict *out) {
    LQ_ASSERT(out);
    memset(out, 0, sizeof *out);
    vm m = { .buf = buf, .len = len, .label = label ? label : "<memory>" };
    if (!buf && len) return vm_fail(&m, LQ_ERR_INVALID_ARG, "NULL buffer");

    bool done   = false;
    obj *result = NULL;
    while (!done) {
        if (m.pos >= m.len) {
            m.op_off = m.pos;
            vm_fail(&m, LQ_ERR_FORMAT, "truncated: no STOP opcode");
            break;
        }
        if (step(&m, &done, &result) != LQ_OK) {
            if (m.st == LQ_OK) m.st = LQ_ERR_FORMAT; /* every failure path logs through vm_fail */
            break;
        }
    }
    lq_status st = m.st;
    if (st == LQ_OK) {
        m.op_off = SIZE_MAX;
        st       = extract(&m, result, out);
    }
    vm_free(&m);
    if (st != LQ_OK) lq__pickle_state_dict_free(out);
    return st;
}
