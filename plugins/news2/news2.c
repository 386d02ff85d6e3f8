/*
 * NEWS2 (National Early Warning Score 2, Royal College of Physicians 2017) as a healthstack
 * plugin, ABI v1. Freestanding C: no libc, a bump allocator and a small JSON scanner, so the
 * module imports nothing and needs no capability.
 *
 * Input:  {"trigger": "...", "resources": [Observation...], "params": {...}}
 *   vitals by LOINC code: respiratory rate 9279-1, SpO2 59408-5 or 2708-6, systolic BP 8480-6
 *   (alone or as a component of the 85354-9 panel), heart rate 8867-4, temperature 8310-5 (Cel).
 *   params.consciousness: "A" (default), "C", "V", "P" or "U" (ACVPU).
 *   params.supplementalOxygen: true or false (default false = air). SpO2 scale 1 only.
 *   When one vital appears more than once, the last one in the input wins.
 * Output: validate -> {"issues": []}; derive/operation -> {"resources": [Observation]} with the
 *   total score, one component per sub-score, and derivedFrom "input:N" references the host
 *   resolves; when a vital is missing, derive returns no resource and operation returns an
 *   OperationOutcome naming what is missing.
 */

typedef unsigned int u32;
typedef int i32;
typedef long long i64;
typedef unsigned long size_t;

#define EXPORT(name) __attribute__((export_name(name)))
#define MAX_DEPTH 64

/* ---- memory: bump allocation, never freed (each call gets a fresh instance) ---- */

extern unsigned char __heap_base;
static u32 heap_top;

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

static void *alloc(u32 n) {
    if (!heap_top) heap_top = (u32)&__heap_base;
    u32 start = (heap_top + 7u) & ~7u;
    u32 end = start + n;
    if (end < start) __builtin_trap();
    u32 have = (u32)__builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        u32 pages = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) __builtin_trap();
    }
    heap_top = end;
    return (void *)start;
}

/* ---- JSON scanning over well-formed input (the host serialises it) ---- */

typedef struct { const char *p, *end; int err; } Cur;
typedef struct { const char *s; u32 n; } Str; /* raw bytes of a JSON string or value */

static void ws(Cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++;
}

static int peek(Cur *c) { ws(c); return c->p < c->end ? *c->p : -1; }

static int expect(Cur *c, char ch) {
    if (peek(c) != ch) { c->err = 1; return 0; }
    c->p++;
    return 1;
}

/* A string's contents (escapes left as they are). */
static Str read_string(Cur *c) {
    Str s = {0, 0};
    if (!expect(c, '"')) return s;
    s.s = c->p;
    while (c->p < c->end && *c->p != '"') c->p += (*c->p == '\\') ? 2 : 1;
    if (c->p >= c->end) { c->err = 1; return s; }
    s.n = (u32)(c->p - s.s);
    c->p++;
    return s;
}

static void skip_value(Cur *c, int depth);

static void skip_container(Cur *c, char close, int depth) {
    c->p++;
    if (peek(c) == close) { c->p++; return; }
    for (;;) {
        if (close == '}') { read_string(c); expect(c, ':'); }
        skip_value(c, depth + 1);
        if (c->err) return;
        if (peek(c) == ',') { c->p++; continue; }
        expect(c, close);
        return;
    }
}

static void skip_value(Cur *c, int depth) {
    int ch = peek(c);
    if (depth > MAX_DEPTH || ch < 0) { c->err = 1; return; }
    if (ch == '"') { read_string(c); return; }
    if (ch == '{' || ch == '[') { skip_container(c, ch == '{' ? '}' : ']', depth); return; }
    while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' && *c->p != ' ') c->p++;
}

/* The raw text of the next value, for copying it into the output unchanged. */
static Str raw_value(Cur *c) {
    Str s;
    ws(c);
    s.s = c->p;
    skip_value(c, 0);
    s.n = (u32)(c->p - s.s);
    return s;
}

/* Object iteration: call obj_open once, then obj_next until it returns 0. */
static int obj_open(Cur *c) { return expect(c, '{'); }

static int obj_next(Cur *c, Str *key, int *first) {
    int ch = peek(c);
    if (ch == '}') { c->p++; return 0; }
    if (!*first && !expect(c, ',')) return 0;
    *first = 0;
    *key = read_string(c);
    return expect(c, ':') && !c->err;
}

static int arr_open(Cur *c) { return expect(c, '['); }

static int arr_next(Cur *c, int *first) {
    int ch = peek(c);
    if (ch == ']') { c->p++; return 0; }
    if (!*first && !expect(c, ',')) return 0;
    *first = 0;
    return !c->err;
}

static int str_eq(Str s, const char *lit) {
    u32 i = 0;
    for (; lit[i]; i++) if (i >= s.n || s.s[i] != lit[i]) return 0;
    return i == s.n;
}

/* A JSON number in hundredths, rounded half up; exponents are refused (ok = 0). */
static i64 read_centi(Cur *c, int *ok) {
    int neg = 0, frac = 0;
    i64 v = 0;
    *ok = 0;
    if (peek(c) == '-') { neg = 1; c->p++; }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') { skip_value(c, 0); return 0; }
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') v = v * 10 + (*c->p++ - '0');
    v *= 100;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++, frac++) {
            if (frac == 0) v += (*c->p - '0') * 10;
            if (frac == 1) v += *c->p - '0';
            if (frac == 2 && *c->p >= '5') v += 1;
        }
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) { skip_value(c, 0); return 0; }
    *ok = 1;
    return neg ? -v : v;
}

/* ---- vitals ---- */

enum { RR, SPO2, SBP, HR, TEMP, NVITALS, NONE = -1 };
static const char *const VITAL_NAMES[NVITALS] = {
    "respiratory rate (9279-1)", "SpO2 (59408-5)", "systolic blood pressure (8480-6)",
    "heart rate (8867-4)", "temperature (8310-5)",
};

typedef struct { int present; i64 centi; int input; Str subject, effective; } Vital;
static Vital vitals[NVITALS];

static int kind_of(Str code) {
    if (str_eq(code, "9279-1")) return RR;
    if (str_eq(code, "59408-5") || str_eq(code, "2708-6")) return SPO2;
    if (str_eq(code, "8480-6")) return SBP;
    if (str_eq(code, "8867-4")) return HR;
    if (str_eq(code, "8310-5")) return TEMP;
    return NONE;
}

/* Fields of one Observation (or one of its components) that the score needs. */
typedef struct {
    int kind, has_value, unit_ok, excluded, sbp_component;
    i64 centi, sbp_centi;
    Str subject, effective;
} Fields;

static void read_coding_list(Cur *c, Fields *f) {
    int first = 1;
    Str key;
    if (!arr_open(c)) return;
    while (arr_next(c, &first)) {
        int ofirst = 1, is_loinc = 1, kind = NONE;
        if (!obj_open(c)) return;
        while (obj_next(c, &key, &ofirst)) {
            if (str_eq(key, "system")) is_loinc = str_eq(read_string(c), "http://loinc.org");
            else if (str_eq(key, "code")) kind = kind_of(read_string(c));
            else skip_value(c, 0);
        }
        if (is_loinc && kind != NONE) f->kind = kind;
    }
}

static void read_code(Cur *c, Fields *f) {
    int first = 1;
    Str key;
    if (!obj_open(c)) return;
    while (obj_next(c, &key, &first)) {
        if (str_eq(key, "coding")) read_coding_list(c, f);
        else skip_value(c, 0);
    }
}

static void read_quantity(Cur *c, Fields *f) {
    int first = 1, ok;
    Str key;
    if (!obj_open(c)) return;
    while (obj_next(c, &key, &first)) {
        if (str_eq(key, "value")) { f->centi = read_centi(c, &ok); f->has_value = ok; }
        else if (str_eq(key, "code")) f->unit_ok = !str_eq(read_string(c), "[degF]");
        else skip_value(c, 0);
    }
}

static void read_fields(Cur *c, Fields *f, int depth);

static void read_components(Cur *c, Fields *f, int depth) {
    int first = 1;
    if (!arr_open(c)) return;
    while (arr_next(c, &first)) {
        Fields sub = {NONE, 0, 1, 0, 0, 0, 0, {0, 0}, {0, 0}};
        read_fields(c, &sub, depth + 1);
        if (sub.kind == SBP && sub.has_value) { f->sbp_component = 1; f->sbp_centi = sub.centi; }
    }
}

static void read_fields(Cur *c, Fields *f, int depth) {
    int first = 1;
    Str key;
    if (depth > 1 || !obj_open(c)) { c->err = 1; return; }
    while (obj_next(c, &key, &first)) {
        if (str_eq(key, "code")) read_code(c, f);
        else if (str_eq(key, "valueQuantity")) read_quantity(c, f);
        else if (str_eq(key, "component")) read_components(c, f, depth);
        else if (str_eq(key, "subject")) f->subject = raw_value(c);
        else if (str_eq(key, "effectiveDateTime")) f->effective = raw_value(c);
        else if (str_eq(key, "status")) {
            Str s = read_string(c);
            f->excluded = str_eq(s, "entered-in-error") || str_eq(s, "cancelled");
        } else skip_value(c, 0);
    }
}

static void record(int kind, i64 centi, int input, const Fields *f) {
    Vital *v = &vitals[kind];
    v->present = 1;
    v->centi = centi;
    v->input = input;
    v->subject = f->subject;
    v->effective = f->effective;
}

static void read_observation(Cur *c, int input) {
    Fields f = {NONE, 0, 1, 0, 0, 0, 0, {0, 0}, {0, 0}};
    read_fields(c, &f, 0);
    if (c->err || f.excluded) return;
    if (f.kind != NONE && f.has_value && f.unit_ok) record(f.kind, f.centi, input, &f);
    if (f.sbp_component) record(SBP, f.sbp_centi, input, &f);
}

/* ---- params ---- */

static int consciousness_score = 0;
static int on_oxygen = 0;

static void read_params(Cur *c) {
    int first = 1;
    Str key;
    if (!obj_open(c)) return;
    while (obj_next(c, &key, &first)) {
        if (str_eq(key, "consciousness")) {
            Str s = read_string(c);
            consciousness_score = (s.n == 1 && s.s[0] == 'A') ? 0 : 3;
        } else if (str_eq(key, "supplementalOxygen")) {
            on_oxygen = peek(c) == 't';
            skip_value(c, 0);
        } else skip_value(c, 0);
    }
}

/* ---- scoring: the published NEWS2 bands, values in hundredths ---- */

static int band(i64 v, const i64 *upper, const int *points, int n) {
    for (int i = 0; i < n; i++) if (v <= upper[i]) return points[i];
    return points[n];
}

static int score_of(int kind, i64 v) {
    static const i64 rr_u[] = {800, 1100, 2000, 2400};       static const int rr_p[] = {3, 1, 0, 2, 3};
    static const i64 spo2_u[] = {9100, 9300, 9500};          static const int spo2_p[] = {3, 2, 1, 0};
    static const i64 sbp_u[] = {9000, 10000, 11000, 21900};  static const int sbp_p[] = {3, 2, 1, 0, 3};
    static const i64 hr_u[] = {4000, 5000, 9000, 11000, 13000}; static const int hr_p[] = {3, 1, 0, 1, 2, 3};
    static const i64 t_u[] = {3500, 3600, 3800, 3900};       static const int t_p[] = {3, 1, 0, 1, 2};
    switch (kind) {
    case RR: return band(v, rr_u, rr_p, 4);
    case SPO2: return band(v, spo2_u, spo2_p, 3);
    case SBP: return band(v, sbp_u, sbp_p, 4);
    case HR: return band(v, hr_u, hr_p, 5);
    default: return band(v, t_u, t_p, 4);
    }
}

/* ---- output ---- */

typedef struct { char *p; u32 n, cap; } Buf;

static void put_n(Buf *b, const char *s, u32 n) {
    if (b->n + n > b->cap) {
        u32 cap = (b->cap + n) * 2;
        char *p = alloc(cap);
        memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put(Buf *b, const char *s) {
    u32 n = 0;
    while (s[n]) n++;
    put_n(b, s, n);
}

static void put_int(Buf *b, i64 v) {
    char tmp[24];
    int i = 24;
    int neg = v < 0;
    if (neg) v = -v;
    do { tmp[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    if (neg) tmp[--i] = '-';
    put_n(b, tmp + i, (u32)(24 - i));
}

static const char *const PART_CODES[] = {
    "respiration-rate", "spo2-scale-1", "systolic-blood-pressure", "pulse", "temperature",
    "air-or-oxygen", "consciousness",
};

static void put_component(Buf *b, int index, int points) {
    put(b, index ? ",{" : "{");
    put(b, "\"code\":{\"coding\":[{\"system\":\"urn:healthstack:news2\",\"code\":\"");
    put(b, PART_CODES[index]);
    put(b, "\"}]},\"valueInteger\":");
    put_int(b, points);
    put(b, "}");
}

static const char *risk_text(int total, int any_three) {
    if (total >= 7) return "high clinical risk (NEWS2 7 or more)";
    if (total >= 5) return "medium clinical risk (NEWS2 5-6)";
    if (any_three) return "low-medium clinical risk (3 in a single parameter)";
    return "low clinical risk (NEWS2 0-4)";
}

static const Vital *latest(void) {
    const Vital *best = &vitals[0];
    for (int k = 1; k < NVITALS; k++) {
        const Str a = vitals[k].effective, b = best->effective;
        u32 n = a.n < b.n ? a.n : b.n, i = 0;
        while (i < n && a.s[i] == b.s[i]) i++;
        if ((i < n && a.s[i] > b.s[i]) || (i == n && a.n > b.n)) best = &vitals[k];
    }
    return best;
}

static void put_derived_from(Buf *b) {
    int seen[NVITALS], nseen = 0;
    put(b, ",\"derivedFrom\":[");
    for (int k = 0; k < NVITALS; k++) {
        int dup = 0;
        for (int j = 0; j < nseen; j++) dup |= seen[j] == vitals[k].input;
        if (dup) continue;
        put(b, nseen ? ",{\"reference\":\"input:" : "{\"reference\":\"input:");
        put_int(b, vitals[k].input);
        put(b, "\"}");
        seen[nseen++] = vitals[k].input;
    }
    put(b, "]");
}

static void put_score(Buf *b) {
    int parts[7], total = 0, any_three = 0;
    for (int k = 0; k < NVITALS; k++) parts[k] = score_of(k, vitals[k].centi);
    parts[5] = on_oxygen ? 2 : 0;
    parts[6] = consciousness_score;
    for (int i = 0; i < 7; i++) { total += parts[i]; any_three |= parts[i] == 3; }
    const Vital *when = latest();
    put(b, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"category\":[{\"coding\":[{"
           "\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\","
           "\"code\":\"survey\",\"display\":\"Survey\"}]}],\"code\":{\"coding\":[{"
           "\"system\":\"http://snomed.info/sct\",\"code\":\"1104051000000101\","
           "\"display\":\"Royal College of Physicians NEWS2 total score\"}]}");
    for (int k = 0; k < NVITALS; k++) {
        if (!vitals[k].subject.n) continue;
        put(b, ",\"subject\":");
        put_n(b, vitals[k].subject.s, vitals[k].subject.n);
        break;
    }
    if (when->effective.n) { put(b, ",\"effectiveDateTime\":"); put_n(b, when->effective.s, when->effective.n); }
    put(b, ",\"valueInteger\":");
    put_int(b, total);
    put(b, ",\"interpretation\":[{\"text\":\"");
    put(b, risk_text(total, any_three));
    put(b, "\"}],\"component\":[");
    for (int i = 0; i < 7; i++) put_component(b, i, parts[i]);
    put(b, "]");
    put_derived_from(b);
    put(b, "}");
}

static void put_missing(Buf *b, int as_outcome) {
    if (!as_outcome) return;
    put(b, "{\"resourceType\":\"OperationOutcome\",\"issue\":[");
    int first = 1;
    for (int k = 0; k < NVITALS; k++) {
        if (vitals[k].present) continue;
        put(b, first ? "{" : ",{");
        put(b, "\"severity\":\"error\",\"code\":\"required\",\"diagnostics\":\"NEWS2 needs ");
        put(b, VITAL_NAMES[k]);
        put(b, "\"}");
        first = 0;
    }
    put(b, "]}");
}

/* ---- ABI v1 ---- */

static i64 result(Buf *b) { return ((i64)(u32)b->p << 32) | b->n; }

static Str read_input(Cur *c) {
    int first = 1;
    Str key, trigger = {0, 0};
    if (!obj_open(c)) return trigger;
    while (obj_next(c, &key, &first)) {
        if (str_eq(key, "trigger")) trigger = read_string(c);
        else if (str_eq(key, "params")) read_params(c);
        else if (str_eq(key, "resources")) {
            int afirst = 1, index = 0;
            if (!arr_open(c)) break;
            while (arr_next(c, &afirst)) read_observation(c, index++);
        } else skip_value(c, 0);
    }
    return trigger;
}

EXPORT("hs_abi_version") i32 hs_abi_version(void) { return 1; }

EXPORT("hs_alloc") i32 hs_alloc(i32 len) { return (i32)alloc((u32)len); }

EXPORT("hs_invoke") i64 hs_invoke(i32 ptr, i32 len) {
    Cur c = {(const char *)ptr, (const char *)ptr + len, 0};
    Buf b = {alloc(4096), 0, 4096};
    Str trigger = read_input(&c);
    if (c.err) __builtin_trap(); /* malformed input: the host reports a trap */
    if (str_eq(trigger, "validate")) { put(&b, "{\"issues\":[]}"); return result(&b); }
    int complete = 1;
    for (int k = 0; k < NVITALS; k++) complete &= vitals[k].present;
    put(&b, "{\"resources\":[");
    if (complete) put_score(&b);
    else put_missing(&b, str_eq(trigger, "operation"));
    put(&b, "]}");
    return result(&b);
}
