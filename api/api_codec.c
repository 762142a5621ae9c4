/*
 * api_codec.c — float32 text both ways, the output buffer and the chunked
 * encoder (see api_codec.h).
 *
 * Writing is Raffaello Giulietti's Schubfach method (2020), written here
 * for float32 alone: the value and the two halfway points to its
 * neighbours are scaled by one power of ten, each with a single 64-bit
 * multiply rounded to odd (exact enough to compare), and the shortest
 * decimal in between is one of four candidates, with no loop dropping
 * digits. (It replaced a port of Ryu: every float32 gives the same text,
 * checked on all 2^32 bit patterns, and the digits take a third less
 * time.) The digits are then turned into text in parallel lanes of one
 * 64-bit word and copied in fixed sizes.
 *
 * Reading takes digits up to eight at a time and a fast path (mantissa and
 * power of ten as doubles, one multiply, within two units in the double's
 * last place of the exact value) unless that double falls within eight
 * units of a halfway point between two floats, where rounding twice could
 * go wrong; those and everything else go to strtof.
 */
#include "api_codec.h"
#include "api_outputs.h"
#include "api_sparse.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ writing */

/* G[k + 45] for -45 <= k <= 31 (every power of ten a float32 needs):
 * with r = floor(log2(10^-k)) and g = floor(10^-k * 2^(125 - r)) + 1, a
 * 126-bit multiplier, G is floor(g / 2^63) + 1, its upper 63 bits
 * rounded up, which is exact enough for float32. Generated once with
 * exact integers. */
static const uint64_t G[77] = {
    0x59aedfc10d7279c6u, 0x47bf19673df52e38u,
    0x72cb5bd86321e38du, 0x5bd5e313828182d7u,
    0x4977e8dc68679be0u, 0x758ca7c70d7292ffu,
    0x5e0a1fd271287599u, 0x4b3b4ca85a86c47bu,
    0x785ee10d5da46d91u, 0x604be73de4838adau,
    0x4d0985cb1d3608afu, 0x7b426fab61f00de4u,
    0x629b8c891b267183u, 0x4ee2d6d415b85acfu,
    0x7e37be2022c0914cu, 0x64f964e68233a770u,
    0x50c783eb9b5c85f3u, 0x409f9cbc7c4a04c3u,
    0x6765c793fa10079eu, 0x52b7d2dcc80cd2e5u,
    0x422ca8b0a00a4251u, 0x69e10de76676d081u,
    0x54b40b1f852bda01u, 0x43c33c1937564801u,
    0x6c6b935b8bbd4001u, 0x56bc75e2d6310001u,
    0x4563918244f40001u, 0x6f05b59d3b200001u,
    0x58d15e1762800001u, 0x470de4df82000001u,
    0x71afd498d0000001u, 0x5af3107a40000001u,
    0x48c2739500000001u, 0x746a528800000001u,
    0x5d21dba000000001u, 0x4a817c8000000001u,
    0x7735940000000001u, 0x5f5e100000000001u,
    0x4c4b400000000001u, 0x7a12000000000001u,
    0x61a8000000000001u, 0x4e20000000000001u,
    0x7d00000000000001u, 0x6400000000000001u,
    0x5000000000000001u, 0x4000000000000001u,
    0x6666666666666667u, 0x51eb851eb851eb86u,
    0x4189374bc6a7ef9eu, 0x68db8bac710cb296u,
    0x53e2d6238da3c212u, 0x431bde82d7b634dbu,
    0x6b5fca6af2bd215fu, 0x55e63b88c230e77fu,
    0x44b82fa09b5a52ccu, 0x6df37f675ef6eae0u,
    0x57f5ff85e5925580u, 0x465e6604b7a84466u,
    0x709709a125da070au, 0x5a126e1a84ae6c08u,
    0x480ebe7b9d58566du, 0x734aca5f6226f0aeu,
    0x5c3bd5191b525a25u, 0x49c97747490eae84u,
    0x760f253edb4ab0d3u, 0x5e72843249088d76u,
    0x4b8ed0283a6d3df8u, 0x78e480405d7b9659u,
    0x60b6cd004ac94514u, 0x4d5f0a66a23a9daau,
    0x7bcb43d769f762a9u, 0x63090312bb2c4eeeu,
    0x4f3a68dbc8f03f25u, 0x7ec3daf941806507u,
    0x65697bfa9acd1da0u, 0x51212ffbaf0a7e19u,
    0x40e7599625a1fe7bu,
};

static uint64_t mul_high(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
#else
    uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
#endif
}

/* g * cp / 2^95 rounded to odd: the low bit says whether anything was
 * cut, so comparisons with exact multiples of 4 below stay exact. */
static uint32_t round_to_odd(uint64_t g, uint64_t cp)
{
    uint64_t x = mul_high(g, cp);
    return (uint32_t)((x >> 31) | (((x & 0xffffffffu) + 0xffffffffu) >> 32));
}

/* floor(log10(2^q)), floor(log10(3/4 * 2^q)) and floor(log2(10^e)) as
 * fixed-point products, exact over float32's range (right shifts of negative values are
 * arithmetic on every compiler the project builds with). */
static int floor_log10_pow2(int q)
{
    return (int)(((int64_t)q * 661971961083) >> 41);
}
static int floor_log10_three_quarters_pow2(int q)
{
    return (int)(((int64_t)q * 661971961083 - 274743187321) >> 41);
}
static int floor_log2_pow10(int e)
{
    return (int)(((int64_t)e * 913124641741) >> 38);
}

static void without_trailing_zeros(uint32_t f, int e, uint32_t *digits,
                                   int *exp10)
{
    while (f % 10 == 0) {
        f /= 10;
        e++;
    }
    *digits = f;
    *exp10 = e;
}

/* The shortest decimal digits and exponent of a finite nonzero float:
 * |v| = *digits * 10^*exp10, the nearest of that length on a choice. */
static void shortest(uint32_t bits, uint32_t *digits, int *exp10)
{
    uint32_t fraction = bits & 0x7fffffu, biased = (bits >> 23) & 0xffu;
    int q; /* v = c * 2^q */
    uint32_t c;
    if (biased != 0) {
        int mq = 150 - (int)biased;
        c = (1u << 23) | fraction;
        if (mq > 0 && mq < 24 && (c >> mq) << mq == c) {
            /* An integer below 2^24 is its own shortest decimal. */
            without_trailing_zeros(c >> mq, 0, digits, exp10);
            return;
        }
        q = -mq;
    } else {
        q = -149;
        c = fraction;
    }
    /* The rounding interval (its bounds included when c is even, as
     * round-half-even reads them back), 4 times c scaled: cb for v, cbl
     * and cbr for the halfway points to its neighbours; below a power of
     * two the lower neighbour is nearer. */
    uint32_t out = c & 1;
    uint64_t cb = (uint64_t)c << 2, cbr = cb + 2, cbl;
    int k;
    if (c != (1u << 23) || q == -149) {
        cbl = cb - 2;
        k = floor_log10_pow2(q);
    } else {
        cbl = cb - 1;
        k = floor_log10_three_quarters_pow2(q);
    }
    int h = q + floor_log2_pow10(-k) + 33;
    uint64_t g = G[k + 45];
    uint32_t vb = round_to_odd(g, cb << h);
    uint32_t vbl = round_to_odd(g, cbl << h);
    uint32_t vbr = round_to_odd(g, cbr << h);
    /* v * 10^-k lies in [s, s + 1); the interval is narrower than 10
     * units, so at most one multiple of 10 is in it (a digit fewer), and
     * otherwise s or s + 1, the nearer when both are. */
    uint32_t s = vb >> 2;
    if (s >= 10) {
        uint32_t down = 10 * (uint32_t)(((uint64_t)s * 1717986919u) >> 34);
        uint32_t up = down + 10;
        int down_in = vbl + out <= down << 2;
        int up_in = (up << 2) + out <= vbr;
        if (down_in != up_in) {
            without_trailing_zeros((down_in ? down : up) / 10, k + 1, digits,
                                   exp10);
            return;
        }
    }
    uint32_t t = s + 1;
    int s_in = vbl + out <= s << 2;
    int t_in = (t << 2) + out <= vbr;
    if (s_in != t_in) {
        without_trailing_zeros(s_in ? s : t, k, digits, exp10);
        return;
    }
    int32_t to_middle = (int32_t)(vb - ((s + t) << 1));
    without_trailing_zeros(to_middle < 0 || (to_middle == 0 && (s & 1) == 0)
                               ? s : t,
                           k, digits, exp10);
}

static const char DIGIT_PAIRS[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "68697071727374757677787980818283848586878889909192939495969798999";

static int count_digits(uint32_t v)
{
    return v >= 100000000 ? 9 : v >= 10000000 ? 8 : v >= 1000000 ? 7
         : v >= 100000 ? 6 : v >= 10000 ? 5 : v >= 1000 ? 4
         : v >= 100 ? 3 : v >= 10 ? 2 : 1;
}

static const uint32_t POW10_INT[10] = {1,      10,      100,      1000,
                                       10000,  100000,  1000000,  10000000,
                                       100000000, 1000000000};

/* The 9 digits of v < 10^9, zero-padded, into p[0..9). Below the first,
 * the digits come from multiplies in parallel lanes of one 64-bit word:
 * the two halves of 10^4 in 32-bit lanes, their hundreds and tens split
 * off by reciprocal multiplies exact below 10^4 and 10^2, so there is no
 * chain of eight divisions. */
static void nine_digits(char *p, uint32_t v)
{
    p[0] = (char)('0' + v / 100000000);
    v %= 100000000;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t x = (v / 10000) | ((uint64_t)(v % 10000) << 32);
    uint64_t hundreds = ((x * 10486) >> 20) & 0x0000007F0000007Fu;
    x = ((x - hundreds * 100) << 16) | hundreds;
    uint64_t tens = ((x * 103) >> 10) & 0x000F000F000F000Fu;
    x = ((x - tens * 10) << 8) | tens;
    x |= 0x3030303030303030u;
    memcpy(p + 1, &x, 8);
#else
    for (int k = 8; k >= 1; k--, v /= 10)
        p[k] = (char)('0' + v % 10);
#endif
}

size_t api_write_float(float v, char *buf)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    char *p = buf;
    if (((bits >> 23) & 0xffu) == 0xffu) {
        memcpy(buf, "null", 4);
        return 4;
    }
    *p = '-';
    p += bits >> 31; /* no branch: signs come in any order */
    if ((bits & 0x7fffffffu) == 0) {
        *p++ = '0';
        return (size_t)(p - buf);
    }
    uint32_t digits;
    int e10;
    shortest(bits, &digits, &e10);
    int n = count_digits(digits);
    int x = e10 + n - 1; /* the exponent of the first digit */
    int precision = n > 6 ? n : 6;
    /* The digits left-aligned in d and zeros after them, so that every
     * layout below copies fixed sizes; what is copied past the text's end
     * stays inside buf's API_FLOAT_MAX bytes and is not part of it. */
    char d[16];
    nine_digits(d, digits * POW10_INT[9 - n]);
    memcpy(d + 9, "0000000", 7);
    if (x < -4 || x >= precision) {
        *p = d[0];
        p[1] = '.';
        memcpy(p + 2, d + 1, 8);
        p += n > 1 ? n + 1 : 1;
        *p++ = 'e';
        *p++ = x < 0 ? '-' : '+';
        int ax = x < 0 ? -x : x;
        memcpy(p, DIGIT_PAIRS + 2 * ax, 2); /* "07", "38" */
        p += 2;
    } else if (x < 0) {
        memcpy(p, "0.000", 5); /* 0.0001 <= |v| < 1 */
        p += 1 - x;
        memcpy(p, d, 9);
        p += n;
    } else if (x + 1 >= n) {
        memcpy(p, d, 9); /* an integer: its zeros are d's */
        p += x + 1;
    } else {
        memcpy(p, d, 8);
        p[x + 1] = '.';
        memcpy(p + x + 2, d + x + 1, 8);
        p += n + 1;
    }
    return (size_t)(p - buf);
}

void api_format_float(float v, char *buf, size_t bufsize)
{
    char tmp[API_FLOAT_MAX];
    size_t n = api_write_float(v, tmp);
    if (bufsize == 0)
        return;
    if (n >= bufsize)
        n = bufsize - 1;
    memcpy(buf, tmp, n);
    buf[n] = '\0';
}

/* ------------------------------------------------------------ reading */

/* POW10_OF[22 + k] is the double nearest 10^k, for |k| <= 22: exact for
 * k >= 0; for k < 0 a product with it is within two units in the last
 * place of the exact quotient, and a multiply is a fraction of a divide's
 * latency. One table, so the power is one load without a branch. */
static const double POW10_OF[45] = {
    1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14,
    1e-13, 1e-12, 1e-11, 1e-10, 1e-9,  1e-8,  1e-7,  1e-6,  1e-5,
    1e-4,  1e-3,  1e-2,  1e-1,  1e0,   1e1,   1e2,   1e3,   1e4,
    1e5,   1e6,   1e7,   1e8,   1e9,   1e10,  1e11,  1e12,  1e13,
    1e14,  1e15,  1e16,  1e17,  1e18,  1e19,  1e20,  1e21,  1e22};

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* How many of the 8 bytes at s are digits before the first that is not
 * (0 to 8), and the value of those digits: the bytes are loaded as one
 * little-endian word, tested in one go and combined pairwise by
 * multiplies (the method of fast_float and simdjson). A byte above '9' or
 * below '0' shows in a high nibble other than 3 in one of the two terms;
 * a carry or borrow out of such a byte reaches only the bytes after it.
 * The digits are moved to the top of the word, so the bytes after them
 * fall out and the ones before read as leading zeros. A number's last
 * digits are read here too, not only runs of eight. */
static int leading_digits(const char *s, uint32_t *value)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, s, sizeof v);
    const uint64_t high = 0xF0F0F0F0F0F0F0F0u;
    uint64_t not_digit = ((v & high) | (((v + 0x0606060606060606u) & high) >> 4)) ^
                         0x3333333333333333u;
    int n = not_digit ? __builtin_ctzll(not_digit) / 8 : 8;
    if (n == 0)
        return 0;
    v = (v - 0x3030303030303030u) << (8 * (8 - n));
    v = v * 10 + (v >> 8); /* each even byte: two digits' value */
    v = (((v & 0x000000FF000000FFu) * (100 + (1000000ull << 32))) +
         (((v >> 16) & 0x000000FF000000FFu) * (1 + (10000ull << 32)))) >>
        32;
    *value = (uint32_t)v;
    return n;
#else
    (void)s, (void)value;
    return 0; /* the byte-by-byte loops read everything */
#endif
}

/* strtof on a copy of s[0..n) into *out; returns n. The body is not
 * NUL-terminated where the number ends, and strtof reads more than JSON
 * allows (hex, "inf"). Kept out of line so that its buffer and call do not
 * give the fast path a stack frame. */
#if defined(__GNUC__)
__attribute__((noinline, cold))
#endif
static size_t slow_float(const char *s, size_t n, float *out)
{
    char local[128];
    char *copy = n < sizeof local ? local : malloc(n + 1);
    if (!copy) { /* a number thousands of digits long, and no memory */
        *out = NAN; /* refused as not finite */
        return n;
    }
    memcpy(copy, s, n);
    copy[n] = '\0';
    *out = strtof(copy, NULL);
    if (copy != local)
        free(copy);
    return n;
}

size_t api_read_float(const char *s, size_t len, float *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= len || !is_digit(s[i]))
        return 0;
    uint64_t w = 0;
    int ndigits = 0;   /* significant digits taken into w */
    int dropped = 0;   /* digits past what w holds (nonzero or not) */
    int scale = 0;     /* the power of ten the digits in w are short of */
    uint32_t run;
    int k;
    if (s[i] == '0') {
        i++;
    } else {
        while (ndigits <= 11 && len - i >= 8 &&
               (k = leading_digits(s + i, &run)) > 0) {
            w = w * POW10_INT[k] + run;
            ndigits += k;
            i += (size_t)k;
            if (k < 8 || i >= len || !is_digit(s[i]))
                break;
        }
        for (; i < len && is_digit(s[i]); i++) {
            if (ndigits < 19) {
                w = w * 10 + (uint64_t)(s[i] - '0');
                ndigits++;
            } else {
                dropped = 1;
                scale++;
            }
        }
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || !is_digit(s[i]))
            return 0;
        while (ndigits <= 11 && len - i >= 8 &&
               (k = leading_digits(s + i, &run)) > 0) {
            /* Leading zeros of 0.000123 are no significant digits. */
            ndigits = w ? ndigits + k : run ? count_digits(run) : 0;
            w = w * POW10_INT[k] + run;
            scale -= k;
            i += (size_t)k;
            if (k < 8 || i >= len || !is_digit(s[i]))
                break;
        }
        for (; i < len && is_digit(s[i]); i++) {
            if (w == 0 && s[i] == '0') {
                scale--; /* leading zeros of 0.000123 */
            } else if (ndigits < 19) {
                w = w * 10 + (uint64_t)(s[i] - '0');
                ndigits++;
                scale--;
            } else {
                dropped = 1;
            }
        }
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i >= len || !is_digit(s[i]))
            return 0;
        int e = 0;
        for (; i < len && is_digit(s[i]); i++)
            if (e < 100000)
                e = e * 10 + (s[i] - '0');
        scale += eneg ? -e : e;
    }
    if (w == 0) {
        *out = neg ? -0.0f : 0.0f;
        return i;
    }
    if (!dropped && w <= ((uint64_t)1 << 53) && (unsigned)(scale + 22) <= 44u) {
        double d = (double)w * POW10_OF[22 + scale];
        /* Inside float32's normal range, a double more than two units in
         * its last place from any halfway point between two floats rounds
         * to the float the exact value does: d is that close to the exact
         * value, and halfway points are doubles (25 significant bits), so
         * none lies between the two. A halfway point's low 29 bits are
         * 0x10000000; eight units either side are left to strtof. */
        if (d >= 0x1p-126 && d < 0x1p127) {
            uint64_t b;
            memcpy(&b, &d, sizeof b);
            uint32_t low = (uint32_t)(b & 0x1fffffffu);
            if (low - (0x10000000u - 8u) > 16u) {
                float f = (float)d;
                *out = neg ? -f : f;
                return i;
            }
        }
    }
    return slow_float(s, i, out);
}

/* ------------------------------------------------------------- writer */

int api_buf_reserve(api_buf *b, size_t n)
{
    if (b->failed)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void api_buf_put(api_buf *b, const char *text, size_t n)
{
    if (api_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, text, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void api_buf_puts(api_buf *b, const char *text)
{
    api_buf_put(b, text, strlen(text));
}

/* The JSON escape of c, or NULL when c stands for itself. */
static const char *escape_of(unsigned char c, char tmp[8])
{
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    case '\b': return "\\b";
    case '\f': return "\\f";
    default:
        if (c >= 0x20)
            return NULL;
        snprintf(tmp, 8, "\\u%04x", c);
        return tmp;
    }
}

void api_buf_string(api_buf *b, const char *text)
{
    api_buf_put(b, "\"", 1);
    for (const char *p = text; *p; p++) {
        char tmp[8];
        const char *esc = escape_of((unsigned char)*p, tmp);
        if (esc)
            api_buf_puts(b, esc);
        else
            api_buf_put(b, p, 1);
    }
    api_buf_put(b, "\"", 1);
}

void api_buf_float(api_buf *b, float v)
{
    if (api_buf_reserve(b, API_FLOAT_MAX))
        return;
    b->len += api_write_float(v, b->data + b->len);
    b->data[b->len] = '\0';
}

/* How many trailing axes element k of a tensor of the given shape starts
 * (its index is 0 on them; last 0) or ends (its index is the last on
 * them; last 1). */
static int trailing_axes(const nn_shape *shape, size_t k, int last)
{
    int axes = 0;
    for (int d = shape->ndim - 1; d >= 0; d--) {
        size_t n = (size_t)shape->dims[d];
        if (k % n != (last ? n - 1 : 0))
            break;
        k /= n;
        axes++;
    }
    return axes;
}

/* The text of element k of a tensor of the given shape with the
 * punctuation around it: the brackets it opens, a comma before it unless
 * it starts an innermost array, the brackets it closes. At most
 * 2 * NN_MAX_DIMS + 1 + API_FLOAT_MAX bytes. */
static size_t element_text(float v, const nn_shape *shape, size_t k,
                           char *out)
{
    char *p = out;
    if (shape->ndim == 0)
        return api_write_float(v, out);
    int starts = trailing_axes(shape, k, 0);
    int ends = trailing_axes(shape, k, 1);
    if (k > 0)
        *p++ = ',';
    for (int i = 0; i < starts; i++)
        *p++ = '[';
    p += api_write_float(v, p);
    for (int i = 0; i < ends; i++)
        *p++ = ']';
    return (size_t)(p - out);
}

#define ELEMENT_MAX (2 * NN_MAX_DIMS + 2 + API_FLOAT_MAX)

/* Runs of a tensor's innermost axis, written without the per-element
 * index arithmetic. */
static void buf_row(api_buf *b, const float *row, size_t n)
{
    for (size_t i = 0; i < n;) {
        /* Room for a block of numbers at once, not one check each. */
        size_t block = n - i < 4096 ? n - i : 4096;
        if (api_buf_reserve(b, block * (API_FLOAT_MAX + 1)))
            return;
        char *p = b->data + b->len;
        for (size_t end = i + block; i < end; i++) {
            if (i)
                *p++ = ',';
            p += api_write_float(row[i], p);
        }
        b->len = (size_t)(p - b->data);
    }
    if (!b->failed)
        b->data[b->len] = '\0';
}

void api_buf_tensor(api_buf *b, const float *data, const nn_shape *shape)
{
    if (shape->ndim == 0) {
        api_buf_float(b, data[0]);
        return;
    }
    size_t n = nn_shape_numel(shape);
    size_t inner = (size_t)shape->dims[shape->ndim - 1];
    for (size_t k = 0; k < n; k += inner) {
        char pre[ELEMENT_MAX];
        /* Opening brackets and comma from the row's first element. */
        size_t len = element_text(data[k], shape, k, pre);
        char *num = pre;
        while (*num == ',' || *num == '[')
            num++;
        api_buf_put(b, pre, (size_t)(num - pre));
        buf_row(b, data + k, inner);
        /* Closing brackets from the row's last element. */
        len = element_text(data[k + inner - 1], shape, k + inner - 1, pre);
        size_t close = 0;
        while (close < len && pre[len - 1 - close] == ']')
            close++;
        api_buf_put(b, pre + len - close, close);
    }
}

char *api_buf_finish(api_buf *b, size_t *len)
{
    if (b->failed || api_buf_reserve(b, 0)) {
        free(b->data);
        memset(b, 0, sizeof *b);
        return NULL;
    }
    char *text = b->data;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof *b);
    return text;
}

/* ---------------------------------------------------- chunked encoder */

typedef struct enc_piece {
    char *text;       /* owned; NULL for a tensor or integers */
    size_t len;
    nn_tensor *tensor; /* owned */
    uint32_t *ints;   /* owned; len of them */
    /* A weight's members: the text before the tensor ends with its JSON
     * "shape" and "data" keys (prefix_len bytes), which the binary framing
     * replaces; shape is the weight's, the tensor is flat. */
    int weight;
    size_t prefix_len;
    nn_shape shape;
    /* Sent as text even in the binary framing: a sparse weight's values,
     * whose document form (api_sparse.h) has no binary member. */
    int text_only;
    /* A live tensor (api_enc_tensor_live): shape, and where its elements
     * come from. */
    api_enc_source live;
    void *live_ctx;
} enc_piece;

struct api_enc {
    enc_piece *pieces;
    int n, cap;
    int failed;
    int at;           /* the piece being written */
    size_t offset;    /* bytes of a text piece sent, or elements of a
                         tensor */
    char pending[ELEMENT_MAX]; /* an element's text that did not fit */
    size_t pending_len, pending_at;
    /* The binary framing (api_enc_binary): the JSON header, then the
     * tensors' bytes; offset counts bytes then. */
    int binary;
    char *header;
    size_t header_len;
    /* Live tensors: the last api_enc_next stopped for elements not yet
     * there (waiting); one was cut short, and the document ends with the
     * source's tail text (text) or cannot end well (binary: broken). */
    int waiting, broken;
    const char *tail;
    size_t tail_len, tail_at;
};

api_enc *api_enc_new(void)
{
    return calloc(1, sizeof(api_enc));
}

static enc_piece *enc_add(api_enc *e)
{
    if (e->failed)
        return NULL;
    if (e->n == e->cap) {
        int cap = e->cap ? e->cap * 2 : 16;
        enc_piece *p = realloc(e->pieces, (size_t)cap * sizeof *p);
        if (!p) {
            e->failed = 1;
            return NULL;
        }
        e->pieces = p;
        e->cap = cap;
    }
    enc_piece *p = &e->pieces[e->n++];
    memset(p, 0, sizeof *p);
    return p;
}

/* Text appends join the last text piece, so a document's punctuation
 * costs few pieces. */
static void enc_put(api_enc *e, const char *text, size_t n)
{
    if (e->failed)
        return;
    enc_piece *last = e->n ? &e->pieces[e->n - 1] : NULL;
    if (!last || !last->text || last->tensor || last->ints) {
        last = enc_add(e);
        if (!last)
            return;
    }
    char *p = realloc(last->text, last->len + n + 1);
    if (!p) {
        e->failed = 1;
        return;
    }
    memcpy(p + last->len, text, n);
    last->len += n;
    p[last->len] = '\0';
    last->text = p;
}

void api_enc_text(api_enc *e, const char *text)
{
    enc_put(e, text, strlen(text));
}

void api_enc_string(api_enc *e, const char *text)
{
    api_buf b = {0};
    api_buf_string(&b, text);
    size_t len;
    char *s = api_buf_finish(&b, &len);
    if (!s) {
        e->failed = 1;
        return;
    }
    enc_put(e, s, len);
    free(s);
}

void api_enc_long(api_enc *e, long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%ld", v);
    enc_put(e, tmp, (size_t)n);
}

void api_enc_tensor(api_enc *e, nn_tensor *t)
{
    enc_piece *p = enc_add(e);
    if (!p) {
        nn_tensor_free(t);
        return;
    }
    p->tensor = t;
}

void api_enc_tensor_live(api_enc *e, const nn_shape *shape,
                         api_enc_source source, void *ctx)
{
    enc_piece *p = enc_add(e);
    if (!p)
        return;
    p->shape = *shape;
    p->live = source;
    p->live_ctx = ctx;
}

int api_enc_waiting(const api_enc *e)
{
    return e->waiting;
}

int api_enc_broken(const api_enc *e)
{
    return e->broken;
}

/* Elements of a piece's tensor, live or held. */
static size_t piece_numel(const enc_piece *p)
{
    return p->live ? nn_shape_numel(&p->shape) : nn_tensor_numel(p->tensor);
}

static const nn_shape *piece_shape(const enc_piece *p)
{
    return p->live ? &p->shape : &p->tensor->shape;
}

/* The elements of piece p from element k on that can be sent now: a
 * pointer to element k and *n of them. 0 of a live tensor: either not
 * there yet (e->waiting), or the tensor was cut at k (*tail set). */
static const float *piece_window(api_enc *e, const enc_piece *p, size_t k,
                                 size_t *n, const char **tail)
{
    *tail = NULL;
    if (!p->live) {
        *n = nn_tensor_numel(p->tensor) - k;
        return p->tensor->data + k;
    }
    const float *w = p->live(p->live_ctx, k, n, tail);
    if (!w)
        *n = 0;
    if (*n == 0 && !*tail)
        e->waiting = 1;
    return w;
}

/* A live tensor cut at element k (a boundary of its axis 1): the brackets
 * that close what is open. */
static size_t cut_brackets(const nn_shape *shape, size_t k, char *out)
{
    size_t n = 0;
    if (k == 0) {
        for (int d = 0; d < shape->ndim && d < 2; d++)
            out[n++] = '[';
        for (int d = 0; d < shape->ndim && d < 2; d++)
            out[n++] = ']';
        return n;
    }
    /* Element k - 1 closed its trailing axes; the others stay open. */
    for (int d = trailing_axes(shape, k - 1, 1); d < shape->ndim; d++)
        out[n++] = ']';
    return n;
}

void api_enc_tensor_text(api_enc *e, nn_tensor *t)
{
    api_enc_tensor(e, t);
    if (!e->failed)
        e->pieces[e->n - 1].text_only = 1;
}

void api_enc_uints(api_enc *e, uint32_t *v, size_t n)
{
    if (n == 0) {
        free(v);
        api_enc_text(e, "[]");
        return;
    }
    enc_piece *p = enc_add(e);
    if (!p) {
        free(v);
        return;
    }
    p->ints = v;
    p->len = n;
}

void api_enc_fail(api_enc *e)
{
    e->failed = 1;
}

/* Integer k of n as array text: "[" or "," before it, "]" after the
 * last. */
static size_t uint_text(const uint32_t *v, size_t k, size_t n, char *out)
{
    int len = snprintf(out, ELEMENT_MAX, "%c%" PRIu32 "%s", k ? ',' : '[',
                       v[k], k + 1 == n ? "]" : "");
    return (size_t)len;
}

int api_enc_failed(const api_enc *e)
{
    return e->failed;
}

/* The wire is little-endian; a big-endian host reverses each float. */
static int host_is_little(void)
{
    const uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* Header first, then each tensor's bytes; e->offset counts the bytes of
 * the piece being sent (of the header while e->at is -1). */
static size_t binary_next(api_enc *e, char *buf, size_t cap)
{
    size_t out = 0;
    e->waiting = 0;
    while (out < cap) {
        const unsigned char *src;
        size_t len, base = 0;
        if (e->at < 0) {
            src = (const unsigned char *)e->header;
            len = e->header_len;
        } else if (e->at < e->n) {
            const enc_piece *p = &e->pieces[e->at];
            if ((!p->tensor && !p->live) || p->text_only) {
                e->at++;
                continue;
            }
            len = piece_numel(p) * sizeof(float);
            /* src points at the float holding byte e->offset; base is
             * that float's first byte. */
            size_t first = e->offset / sizeof(float), ready;
            const char *tail;
            const float *w = piece_window(e, p, first, &ready, &tail);
            if (tail) {
                e->broken = 1;
                e->at = e->n;
                break;
            }
            if (!ready)
                break;
            base = first * sizeof(float);
            src = (const unsigned char *)w;
            if (base + ready * sizeof(float) < len)
                len = base + ready * sizeof(float);
        } else {
            break;
        }
        size_t n = len - e->offset < cap - out ? len - e->offset : cap - out;
        if (e->at < 0 || host_is_little()) {
            memcpy(buf + out, src + e->offset - base, n);
        } else {
            for (size_t k = 0; k < n; k++) {
                size_t b = e->offset + k;
                buf[out + k] =
                    (char)src[(b & ~(size_t)3) + 3 - (b & 3) - base];
            }
        }
        out += n;
        e->offset += n;
        if (e->at < 0 ? e->offset == len
                      : e->offset == piece_numel(&e->pieces[e->at]) *
                                         sizeof(float)) {
            e->at++;
            e->offset = 0;
        }
    }
    return out;
}

/* {"shape":[..],"datatype":"FP32","binary_data_size":N}, without the
 * braces for a weight's members. */
static void binary_descriptor(api_buf *b, const nn_shape *shape, int braces)
{
    if (braces)
        api_buf_puts(b, "{");
    api_buf_puts(b, "\"shape\":[");
    char tmp[32];
    for (int d = 0; d < shape->ndim; d++) {
        snprintf(tmp, sizeof tmp, "%s%d", d ? "," : "", shape->dims[d]);
        api_buf_puts(b, tmp);
    }
    snprintf(tmp, sizeof tmp, "%zu", nn_shape_numel(shape) * sizeof(float));
    api_buf_puts(b, "],\"datatype\":\"FP32\",\"binary_data_size\":");
    api_buf_puts(b, tmp);
    if (braces)
        api_buf_puts(b, "}");
}

int api_enc_binary(api_enc *e, size_t *header_len, size_t *total)
{
    if (e->failed)
        return -1;
    api_buf b = {0};
    size_t bytes = 0;
    for (int i = 0; i < e->n; i++) {
        const enc_piece *p = &e->pieces[i];
        if (p->ints) {
            char tmp[ELEMENT_MAX];
            for (size_t k = 0; k < p->len; k++)
                api_buf_put(&b, tmp, uint_text(p->ints, k, p->len, tmp));
            continue;
        }
        if (!p->tensor && !p->live) {
            api_buf_put(&b, p->text, p->len);
            continue;
        }
        if (p->text_only) {
            api_buf_tensor(&b, p->tensor->data, &p->tensor->shape);
            continue;
        }
        if (p->weight && !b.failed)
            b.len -= p->prefix_len < b.len ? p->prefix_len : b.len;
        binary_descriptor(&b, p->weight ? &p->shape : piece_shape(p),
                          !p->weight);
        bytes += piece_numel(p) * sizeof(float);
    }
    size_t len;
    char *header = api_buf_finish(&b, &len);
    if (!header) {
        e->failed = 1;
        return -1;
    }
    free(e->header);
    e->header = header;
    e->header_len = len;
    e->binary = 1;
    e->at = -1;
    e->offset = 0;
    *header_len = len;
    *total = len + bytes;
    return 0;
}

/* What fits of text[*at..len) into room bytes at dst; *at moves on. */
static size_t copy_some(char *dst, size_t room, const char *text, size_t len,
                        size_t *at)
{
    size_t n = len - *at < room ? len - *at : room;
    memcpy(dst, text + *at, n);
    *at += n;
    return n;
}

size_t api_enc_next(api_enc *e, char *buf, size_t cap)
{
    if (e->binary)
        return binary_next(e, buf, cap);
    size_t out = 0;
    e->waiting = 0;
    while (out < cap) {
        if (e->pending_at < e->pending_len) {
            out += copy_some(buf + out, cap - out, e->pending, e->pending_len,
                             &e->pending_at);
            continue;
        }
        if (e->tail) {
            out += copy_some(buf + out, cap - out, e->tail, e->tail_len,
                             &e->tail_at);
            if (e->tail_at == e->tail_len)
                break;
            continue;
        }
        if (e->at >= e->n)
            break;
        enc_piece *p = &e->pieces[e->at];
        if (p->ints) {
            while (e->offset < p->len && cap - out >= ELEMENT_MAX)
                out += uint_text(p->ints, e->offset++, p->len, buf + out);
            if (e->offset < p->len && out < cap) {
                e->pending_len = uint_text(p->ints, e->offset++, p->len,
                                           e->pending);
                e->pending_at = 0;
                continue;
            }
        } else if (!p->tensor && !p->live) {
            out += copy_some(buf + out, cap - out, p->text, p->len,
                             &e->offset);
        } else {
            size_t total = piece_numel(p);
            const nn_shape *shape = piece_shape(p);
            size_t from = e->offset, ready;
            const char *tail;
            const float *w = piece_window(e, p, from, &ready, &tail);
            if (tail) {
                /* Cut short: close what is open, end with the tail. */
                e->pending_len = cut_brackets(shape, from, e->pending);
                e->pending_at = 0;
                e->tail = tail;
                e->tail_len = strlen(tail);
                e->tail_at = 0;
                e->at = e->n;
                continue;
            }
            if (!ready)
                break;
            size_t end = from + ready;
            /* Whole elements straight into buf while they surely fit;
             * the one that might not goes through pending. Only the first
             * and last of a row have brackets to work out. */
            size_t inner = shape->ndim
                               ? (size_t)shape->dims[shape->ndim - 1]
                               : 1;
            size_t col = e->offset % inner;
            while (e->offset < end && cap - out >= ELEMENT_MAX) {
                float v = w[e->offset - from];
                if (col == 0 || col == inner - 1) {
                    out += element_text(v, shape, e->offset, buf + out);
                } else {
                    buf[out++] = ',';
                    out += api_write_float(v, buf + out);
                }
                e->offset++;
                if (++col == inner)
                    col = 0;
            }
            if (e->offset < end && out < cap) {
                e->pending_len = element_text(w[e->offset - from], shape,
                                              e->offset, e->pending);
                e->pending_at = 0;
                e->offset++;
                if (e->offset == total) {
                    e->at++;
                    e->offset = 0;
                }
                continue;
            }
            if (e->offset < total)
                continue;
        }
        if ((!p->tensor && !p->live && e->offset == p->len) ||
            ((p->tensor || p->live) && e->offset == piece_numel(p))) {
            e->at++;
            e->offset = 0;
        }
    }
    return out;
}

void api_enc_free(api_enc *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->n; i++) {
        free(e->pieces[i].text);
        nn_tensor_free(e->pieces[i].tensor);
        free(e->pieces[i].ints);
    }
    free(e->pieces);
    free(e->header);
    free(e);
}

/* ------------------------------------------------- response documents */

static nn_tensor *tensor_copy(const nn_tensor *t)
{
    nn_tensor *c = nn_tensor_new(&t->shape);
    if (c)
        memcpy(c->data, t->data, nn_tensor_numel(t) * sizeof(float));
    return c;
}

/* Takes t, which may be NULL (out of memory: the encoder fails). */
static void enc_tensor_or_fail(api_enc *e, nn_tensor *t)
{
    if (!t)
        e->failed = 1;
    else
        api_enc_tensor(e, t);
}

static api_enc *finish_enc(api_enc *e)
{
    if (e && e->failed) {
        api_enc_free(e);
        return NULL;
    }
    return e;
}

/* {"outputs": {...}[, "step": step]} of the named nodes' outputs in s. */
static api_enc *step_enc(const nn_session *s, const char *const *names, int n,
                         long step)
{
    api_enc *e = api_enc_new();
    if (!e)
        return NULL;
    api_enc_text(e, "{\"outputs\":{");
    for (int x = 0; x < n; x++) {
        if (x)
            api_enc_text(e, ",");
        api_enc_string(e, names[x]);
        api_enc_text(e, ":");
        enc_tensor_or_fail(e, tensor_copy(nn_session_output(s, names[x])));
    }
    api_enc_text(e, "}");
    if (step >= 0) {
        api_enc_text(e, ",\"step\":");
        api_enc_long(e, step);
    }
    api_enc_text(e, "}");
    return finish_enc(e);
}

/* The same of sequences, taking outputs[0..n) (freed also on failure). */
/* outputs[x] for each name; with live set, the first is live (shaped
 * *live_shape, from live(live_ctx)) and outputs[0] is not read. */
static api_enc *sequence_enc(const char *const *names, int n,
                             nn_tensor **outputs, long step,
                             const nn_shape *live_shape, api_enc_source live,
                             void *live_ctx)
{
    api_enc *e = api_enc_new();
    if (!e) {
        for (int x = live ? 1 : 0; x < n; x++) {
            nn_tensor_free(outputs[x]);
            outputs[x] = NULL;
        }
        return NULL;
    }
    api_enc_text(e, "{\"outputs\":{");
    for (int x = 0; x < n; x++) {
        if (x)
            api_enc_text(e, ",");
        api_enc_string(e, names[x]);
        api_enc_text(e, ":");
        if (x == 0 && live)
            api_enc_tensor_live(e, live_shape, live, live_ctx);
        else if (outputs[x])
            api_enc_tensor(e, outputs[x]);
        else
            e->failed = 1;
        outputs[x] = NULL;
    }
    api_enc_text(e, "}");
    if (step >= 0) {
        api_enc_text(e, ",\"step\":");
        api_enc_long(e, step);
    }
    api_enc_text(e, "}");
    return finish_enc(e);
}

api_enc *api_step_outputs_enc(const nn_session *s, const nn_graph *g,
                              long step)
{
    api_outputs o;
    api_error err;
    api_enc *e = api_outputs_exits(g, &o, &err) == 0
                     ? step_enc(s, o.names, o.n, step)
                     : NULL;
    api_outputs_free(&o);
    return e;
}

api_enc *api_sequence_outputs_enc(const nn_graph *g, nn_tensor **outputs,
                                  long step)
{
    api_outputs o;
    api_error err;
    if (api_outputs_exits(g, &o, &err)) {
        for (int x = 0; x < nn_graph_exit_count(g); x++) {
            nn_tensor_free(outputs[x]);
            outputs[x] = NULL;
        }
        api_outputs_free(&o);
        return NULL;
    }
    api_enc *e = sequence_enc(o.names, o.n, outputs, step, NULL, NULL, NULL);
    api_outputs_free(&o);
    return e;
}

api_enc *api_step_nodes_enc(const nn_session *s, const api_outputs *o,
                            long step)
{
    return step_enc(s, o->names, o->n, step);
}

api_enc *api_sequence_nodes_enc(const api_outputs *o, nn_tensor **outputs,
                                long step)
{
    return sequence_enc(o->names, o->n, outputs, step, NULL, NULL, NULL);
}

api_enc *api_sequence_nodes_live_enc(const api_outputs *o,
                                     const nn_shape *first,
                                     api_enc_source source, void *ctx,
                                     nn_tensor **outputs, long step)
{
    return sequence_enc(o->names, o->n, outputs, step, first, source, ctx);
}

/* "shape":[..],"data":[flat] of a copy of t: a weight's members, which
 * api_enc_binary can tell from the rest of the text. */
static void enc_weight(api_enc *e, const nn_tensor *t)
{
    size_t before = e->n && e->pieces[e->n - 1].text
                        ? e->pieces[e->n - 1].len
                        : 0;
    api_enc_text(e, "\"shape\":[");
    for (int d = 0; d < t->shape.ndim; d++) {
        if (d)
            api_enc_text(e, ",");
        api_enc_long(e, t->shape.dims[d]);
    }
    api_enc_text(e, "],\"data\":");
    if (e->failed)
        return;
    size_t prefix = e->pieces[e->n - 1].len - before;
    /* The data flat, as a one-axis tensor of the same floats. */
    nn_tensor *flat = tensor_copy(t);
    if (flat) {
        int n = (int)nn_tensor_numel(t);
        flat->shape = nn_shape_make(1, &n);
    }
    enc_tensor_or_fail(e, flat);
    if (!e->failed) {
        enc_piece *p = &e->pieces[e->n - 1];
        p->weight = 1;
        p->prefix_len = prefix;
        p->shape = t->shape;
    }
}

api_enc *api_params_enc(const nn_graph *g)
{
    api_enc *e = api_enc_new();
    if (!e)
        return NULL;
    api_enc_text(e, "{\"nodes\":{");
    int first = 1;
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        if (!nn_node_weight_count(node))
            continue;
        if (!first)
            api_enc_text(e, ",");
        first = 0;
        api_enc_string(e, nn_node_name(node));
        api_enc_text(e, ":{");
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            const nn_tensor *t = nn_node_weight_at(node, w);
            if (w)
                api_enc_text(e, ",");
            api_enc_string(e, nn_node_weight_name(node, w));
            api_enc_text(e, ":");
            if (nn_node_weight_sparse(node, w, NULL, NULL)) {
                api_enc_sparse_weight(e, node, w);
                api_enc_text(e, ",\"trainable\":");
                api_enc_text(e, nn_node_weight_trainable(node, w) ? "true"
                                                                  : "false");
                api_enc_text(e, "}");
                continue;
            }
            api_enc_text(e, "{");
            enc_weight(e, t);
            api_enc_text(e, ",\"trainable\":");
            api_enc_text(e, nn_node_weight_trainable(node, w) ? "true"
                                                              : "false");
            api_enc_text(e, "}");
        }
        api_enc_text(e, "}");
    }
    api_enc_text(e, "}}");
    return finish_enc(e);
}
