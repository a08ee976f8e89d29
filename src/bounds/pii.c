/*
 * pii.c - personal data detectors: the Vectorscan candidate patterns, the
 * validators that confirm a candidate, and the context check for the few
 * false positives that only their neighbours give away.
 *
 * The patterns are deliberately broad and the validators strict: a pattern
 * only has to put the start of a candidate at the right place (Vectorscan
 * reports the leftmost start for each end offset), the validator decides.
 * Everything here works on bytes: no locale, no allocation, and no byte
 * past n is read, whatever the bytes are (NUL and invalid UTF-8 included).
 * Each validator gives up within a few dozen bytes, so that a scan which
 * reports many long overlapping candidates (a table of numbers) stays
 * linear.
 */
#include "bounds/pii.h"

#include <hs/hs.h>
#include <stdint.h>
#include <string.h>

/* ---- Patterns ---------------------------------------------------------- */

/*
 * Why each pattern looks the way it does:
 * - email: a local part that starts with a letter, digit or '_' (so that a
 *   leading quote or '*' around an address is left out), dot-separated
 *   atoms of the characters practical addresses use (not '/', '=', '?',
 *   which mostly belong to URLs around them), then domain labels and a
 *   TLD of letters. Bounding the TLD ({2,63}) makes the SOM database too
 *   large; the validator checks the lengths.
 * - phone: an optional head ('+' and a country code, and/or an area code
 *   in parentheses), then digit groups with ONE kind of separator. The
 *   single separator keeps the leftmost start right: in
 *   "2024-01-15 555-123-4567" no candidate can start in the date and end
 *   in the phone number. \B before '+' and '(' means "not after a word
 *   character".
 * - iban: country letters, check digits, then groups of four with an
 *   optional space (and a shorter last group); compiled caseless.
 * - card: 13 to 19 digits in one run, or the printed groupings 4-4-4-x
 *   (x up to 4 and an optional fifth group of up to 3) and 4-6-4/4-6-5
 *   (Amex, Diners), with spaces or with dashes, never mixed.
 * - ipv4: four dotted groups of one to three digits.
 * - ipv6: hex groups joined by ':' with room for one '::', ending in a hex
 *   group (optionally an IPv4 tail) at a word boundary, or in '::'.
 * - uk_nino: two capital letters, three pairs of digits and a capital
 *   suffix, with the optional spaces of the printed form. Not caseless
 *   (the validator is): in lower case it matches prose ("re 12 34 56 a").
 * - us_ssn: 3-2-4 digits with dashes, with spaces, or with nothing.
 */
static const struct pii_info {
	const char *name;
	const char *pattern;
	unsigned flags;
} pii_info[PWB__PII_N] = {
    [PWB__PII_EMAIL] = {"email",
			"[A-Za-z0-9_][A-Za-z0-9_%+'-]*"
			"(?:\\.[A-Za-z0-9_%+'-]+)*"
			"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\\.)+"
			"[A-Za-z]{2,}\\b",
			0},
    [PWB__PII_PHONE] = {"phone",
			"(?:\\B\\+[1-9][0-9]{0,14}[ .-]?"
			"(?:\\([0-9]{1,5}\\)[ .-]?)?"
			"|\\B\\([0-9]{1,5}\\)[ .-]?"
			"|\\b)"
			"(?:[0-9]+(?: [0-9]+)*"
			"|[0-9]+(?:-[0-9]+)*"
			"|[0-9]+(?:\\.[0-9]+)*)\\b",
			0},
    [PWB__PII_IBAN] = {"iban",
		       "\\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}"
		       "(?: ?[A-Z0-9]{1,4})?\\b",
		       HS_FLAG_CASELESS},
    [PWB__PII_CARD] = {"card",
		       "\\b(?:[0-9]{13,19}"
		       "|[0-9]{4}(?: [0-9]{4}){2} [0-9]{1,4}(?: [0-9]{1,3})?"
		       "|[0-9]{4}(?:-[0-9]{4}){2}-[0-9]{1,4}(?:-[0-9]{1,3})?"
		       "|[0-9]{4} [0-9]{6} [0-9]{4,5}"
		       "|[0-9]{4}-[0-9]{6}-[0-9]{4,5})\\b",
		       0},
    [PWB__PII_IPV4] = {"ipv4",
		       "\\b[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"
		       "\\b",
		       0},
    [PWB__PII_IPV6] = {"ipv6",
		       "(?:\\b[0-9A-Fa-f]{1,4}|\\B:)"
		       "(?::[0-9A-Fa-f]{0,4}){0,7}:[0-9A-Fa-f]{1,4}"
		       "(?:\\.[0-9]{1,3}){0,3}\\b"
		       "|\\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){0,6}::\\B",
		       0},
    [PWB__PII_UK_NINO] = {"uk_nino",
			  "\\b[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\\b",
			  0},
    [PWB__PII_US_SSN] = {"us_ssn",
			 "\\b(?:[0-9]{3}-[0-9]{2}-[0-9]{4}"
			 "|[0-9]{3} [0-9]{2} [0-9]{4}"
			 "|[0-9]{9})\\b",
			 0},
};

const char *pwb__pii_name(pwb__pii_kind k)
{
	if ((unsigned)k >= PWB__PII_N)
		return NULL;
	return pii_info[k].name;
}

const char *pwb__pii_pattern(pwb__pii_kind k)
{
	if ((unsigned)k >= PWB__PII_N)
		return NULL;
	return pii_info[k].pattern;
}

unsigned pwb__pii_flags(pwb__pii_kind k)
{
	if ((unsigned)k >= PWB__PII_N)
		return 0;
	return pii_info[k].flags;
}

/* ---- Bytes --------------------------------------------------------------- */

/* ASCII only, independent of the locale and safe for any byte. */
static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_alnum(unsigned char c)
{
	return is_digit(c) || is_alpha(c);
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

static unsigned char to_upper(unsigned char c)
{
	return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
}

/* The value of n decimal digits at s (n small enough not to overflow). */
static unsigned dec_value(const unsigned char *s, size_t n)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	return v;
}

/* ---- E-mail -------------------------------------------------------------- */

/* RFC 5322 atext: the characters of a dot-atom besides the dots. */
static bool is_atext(unsigned char c)
{
	static const char specials[] = "!#$%&'*+-/=?^_`{|}~";
	return is_alnum(c) ||
	       (c != 0 && memchr(specials, c, sizeof(specials) - 1) != NULL);
}

/*
 * local@domain, no quoted local parts and no address literals: the local
 * part is 1-64 bytes of dot-separated atoms (no leading, trailing or
 * doubled dot); the domain is at most 253 bytes of at least two labels,
 * each 1-63 letters, digits and inner hyphens, the last (the TLD) 2-63
 * letters.
 */
static bool valid_email(const unsigned char *s, size_t n)
{
	if (n > 254)
		return false;
	const unsigned char *at = memchr(s, '@', n);
	if (!at)
		return false;
	size_t nl = (size_t)(at - s);
	if (nl == 0 || nl > 64)
		return false;
	bool after_dot = true;
	for (size_t i = 0; i < nl; i++) {
		if (s[i] == '.') {
			if (after_dot)
				return false;
			after_dot = true;
		} else if (is_atext(s[i])) {
			after_dot = false;
		} else {
			return false;
		}
	}
	if (after_dot)
		return false;

	const unsigned char *d = at + 1;
	size_t nd = n - nl - 1;
	if (nd == 0 || nd > 253)
		return false;
	size_t labels = 0, i = 0;
	for (;;) {
		size_t b = i;
		bool letters_only = true;
		while (i < nd && d[i] != '.') {
			if (!is_alnum(d[i]) && d[i] != '-')
				return false;
			if (!is_alpha(d[i]))
				letters_only = false;
			i++;
		}
		size_t len = i - b;
		if (len == 0 || len > 63 || d[b] == '-' || d[i - 1] == '-')
			return false;
		labels++;
		if (i == nd)
			return labels >= 2 && len >= 2 && letters_only;
		i++; /* the dot; a trailing one gives an empty label above */
	}
}

/* ---- Phone numbers ------------------------------------------------------- */

typedef struct phone_group {
	unsigned char len; /* digits */
	unsigned char sep; /* separator before the group, 0 for none */
	bool cc;	   /* the country code right after '+' */
	bool paren;	   /* an area code in parentheses */
	const unsigned char *at;
} phone_group;

#define PHONE_MAX_DIGITS 15

/* Y-M-D or D-M-Y / M-D-Y with a year 1900-2099: a date, not a phone. */
static bool phone_is_date(const phone_group *g, size_t ng)
{
	if (ng != 3)
		return false;
	unsigned a = dec_value(g[0].at, g[0].len);
	unsigned b = dec_value(g[1].at, g[1].len);
	unsigned c = dec_value(g[2].at, g[2].len);
	if (g[0].len == 4 && g[1].len == 2 && g[2].len == 2)
		return a >= 1900 && a <= 2099 && b >= 1 && b <= 12 && c >= 1 &&
		       c <= 31;
	if (g[0].len == 2 && g[1].len == 2 && g[2].len == 4) {
		if (c < 1900 || c > 2099 || a == 0 || b == 0)
			return false;
		return (a <= 31 && b <= 12) || (a <= 12 && b <= 31);
	}
	return false;
}

/*
 * Reads s into groups. Accepted shape: ['+' cc [sep]] ['(' 1-5 digits ')'
 * [sep]] digits (sep digits)*, where sep is one space, dash or dot, and
 * the separators after the head (the '+' group and the parenthesised
 * group) are all the same one.
 */
static bool phone_parse(const unsigned char *s, size_t n, phone_group *g,
			size_t *ng_out, unsigned *digits_out)
{
	size_t i = 0, ng = 0;
	unsigned digits = 0;
	unsigned char sep = 0;
	bool plus = false, paren = false;

	if (n > 0 && s[0] == '+') {
		plus = true;
		i = 1;
		if (i == n || s[i] < '1' || s[i] > '9')
			return false;
	}
	while (i < n) {
		unsigned char c = s[i];
		if (is_digit(c) || c == '(') {
			bool in_paren = c == '(';
			if (in_paren) {
				/* First, or right after the country code. */
				if (paren || ng != (plus ? 1u : 0u))
					return false;
				i++;
			}
			/* Stop early: a candidate may be a long digit table. */
			size_t b = i;
			while (i < n && is_digit(s[i]) &&
			       i - b <= PHONE_MAX_DIGITS)
				i++;
			size_t len = i - b;
			if (len == 0 || ng == PHONE_MAX_DIGITS ||
			    digits + len > PHONE_MAX_DIGITS)
				return false;
			if (in_paren) {
				if (len > 5 || i == n || s[i] != ')')
					return false;
				i++;
				paren = true;
			}
			g[ng] = (phone_group){.len = (unsigned char)len,
					      .sep = sep,
					      .cc = plus && ng == 0,
					      .paren = in_paren,
					      .at = s + b};
			ng++;
			digits += (unsigned)len;
			sep = 0;
		} else if (c == ' ' || c == '-' || c == '.') {
			/* One separator, between two groups. */
			if (ng == 0 || sep != 0)
				return false;
			sep = c;
			i++;
		} else {
			return false;
		}
	}
	if (ng == 0 || sep != 0 || g[ng - 1].paren)
		return false;

	/* One kind of separator in the body, after the head groups. */
	unsigned char body = 0;
	for (size_t k = 1; k < ng; k++) {
		if (g[k - 1].cc || g[k - 1].paren)
			continue;
		if (body == 0)
			body = g[k].sep;
		else if (g[k].sep != body)
			return false;
	}
	*ng_out = ng;
	*digits_out = digits;
	return true;
}

/*
 * 7 to 15 digits; after '+' (or a first group "00" and a country code,
 * followed by more groups) the country code does not start with 0. A
 * number with neither '+', nor an area code in parentheses, nor a leading
 * trunk 0 ("bare", e.g. 555-123-4567) is a phone only in the usual
 * national groupings: at least three groups of 2-4 digits (a leading "1"
 * before three more groups, as in 1-800-555-0199, is allowed); a bare run
 * of digits is an order number, not a phone. Rejected as other things:
 * dates (2024-01-15, 15.01.2024), card and IBAN digit blocks (three or
 * more groups of exactly four), SSN shape (3-2-4), dotted IPv4 shape and
 * dotted thousands (1.234.567), ISBN-like single-digit groups.
 */
static bool valid_phone(const unsigned char *s, size_t n)
{
	phone_group g[PHONE_MAX_DIGITS];
	size_t ng = 0;
	unsigned digits = 0;
	if (!phone_parse(s, n, g, &ng, &digits))
		return false;
	if (digits < 7 || digits > PHONE_MAX_DIGITS)
		return false;

	/* "00" and a country code is the '+' of most countries' dialling. */
	bool plus = g[0].cc;
	bool intl00 = !plus && ng >= 2 && g[0].len >= 3 && g[0].at[0] == '0' &&
		      g[0].at[1] == '0' && g[0].at[2] != '0';
	bool paren = false;
	for (size_t k = 0; k < ng; k++)
		paren = paren || g[k].paren;
	bool trunk = g[0].at[0] == '0';
	bool bare = !plus && !paren && !trunk;
	bool intl = plus || intl00;

	if (g[ng - 1].len < 2)
		return false;
	if (bare && ng < 3)
		return false;
	if (!intl && !paren && trunk && ng == 1 &&
	    (g[0].len < 10 || g[0].len > 11 || g[0].at[1] == '0'))
		return false;
	for (size_t k = 0; k < ng; k++) {
		if (g[k].cc || g[k].paren)
			continue;
		bool after_head = k == 1 && (intl || g[0].paren);
		bool nanp_one = k == 0 && bare && ng >= 4 && g[0].len == 1 &&
				g[0].at[0] == '1';
		if (g[k].len == 1 && !after_head && !nanp_one)
			return false;
		if (bare && g[k].len > 4)
			return false;
	}
	if (plus)
		return true;

	unsigned char body = ng > 1 ? g[ng - 1].sep : 0;
	size_t fours = 0;
	bool thousands = body == '.' && g[0].len <= 3;
	for (size_t k = 0; k < ng; k++) {
		fours += g[k].len == 4 && !(k == 0 && intl00);
		if (k > 0 && g[k].len != 3)
			thousands = false;
	}
	if (fours >= 3)
		return false;
	if (paren)
		return true;
	if (phone_is_date(g, ng))
		return false;
	if (ng == 3 && g[0].len == 3 && g[1].len == 2 && g[2].len == 4)
		return false;
	if (body == '.' && ng == 4 && g[0].len <= 3 && g[1].len <= 3 &&
	    g[2].len <= 3 && g[3].len <= 3)
		return false;
	if (thousands && ng > 1)
		return false;
	return true;
}

/* ---- IBAN ---------------------------------------------------------------- */

/* IBAN lengths from the SWIFT IBAN registry (ISO 13616), sorted. */
static const struct iban_country {
	char cc[2];
	unsigned char len;
} iban_countries[] = {
    {{'A', 'D'}, 24}, {{'A', 'E'}, 23}, {{'A', 'L'}, 28}, {{'A', 'T'}, 20},
    {{'A', 'Z'}, 28}, {{'B', 'A'}, 20}, {{'B', 'E'}, 16}, {{'B', 'G'}, 22},
    {{'B', 'H'}, 22}, {{'B', 'R'}, 29}, {{'B', 'Y'}, 28}, {{'C', 'H'}, 21},
    {{'C', 'R'}, 22}, {{'C', 'Y'}, 28}, {{'C', 'Z'}, 24}, {{'D', 'E'}, 22},
    {{'D', 'K'}, 18}, {{'D', 'O'}, 28}, {{'E', 'E'}, 20}, {{'E', 'G'}, 29},
    {{'E', 'S'}, 24}, {{'F', 'I'}, 18}, {{'F', 'O'}, 18}, {{'F', 'R'}, 27},
    {{'G', 'B'}, 22}, {{'G', 'E'}, 22}, {{'G', 'I'}, 23}, {{'G', 'L'}, 18},
    {{'G', 'R'}, 27}, {{'G', 'T'}, 28}, {{'H', 'R'}, 21}, {{'H', 'U'}, 28},
    {{'I', 'E'}, 22}, {{'I', 'L'}, 23}, {{'I', 'Q'}, 23}, {{'I', 'S'}, 26},
    {{'I', 'T'}, 27}, {{'J', 'O'}, 30}, {{'K', 'W'}, 30}, {{'K', 'Z'}, 20},
    {{'L', 'B'}, 28}, {{'L', 'C'}, 32}, {{'L', 'I'}, 21}, {{'L', 'T'}, 20},
    {{'L', 'U'}, 20}, {{'L', 'V'}, 21}, {{'L', 'Y'}, 25}, {{'M', 'C'}, 27},
    {{'M', 'D'}, 24}, {{'M', 'E'}, 22}, {{'M', 'K'}, 19}, {{'M', 'R'}, 27},
    {{'M', 'T'}, 31}, {{'M', 'U'}, 30}, {{'N', 'L'}, 18}, {{'N', 'O'}, 15},
    {{'P', 'K'}, 24}, {{'P', 'L'}, 28}, {{'P', 'S'}, 29}, {{'P', 'T'}, 25},
    {{'Q', 'A'}, 29}, {{'R', 'O'}, 24}, {{'R', 'S'}, 22}, {{'S', 'A'}, 24},
    {{'S', 'C'}, 31}, {{'S', 'E'}, 24}, {{'S', 'I'}, 19}, {{'S', 'K'}, 24},
    {{'S', 'M'}, 27}, {{'S', 'T'}, 25}, {{'S', 'V'}, 28}, {{'T', 'L'}, 23},
    {{'T', 'N'}, 24}, {{'T', 'R'}, 26}, {{'U', 'A'}, 29}, {{'V', 'A'}, 22},
    {{'V', 'G'}, 24}, {{'X', 'K'}, 20},
};

#define IBAN_MAX 34

static unsigned iban_length(unsigned char a, unsigned char b)
{
	size_t n = sizeof(iban_countries) / sizeof(iban_countries[0]);
	for (size_t i = 0; i < n; i++)
		if (iban_countries[i].cc[0] == a &&
		    iban_countries[i].cc[1] == b)
			return iban_countries[i].len;
	return 0;
}

/*
 * Electronic form (no spaces) or print form (a single space after every
 * four characters); letters in either case. Country code known, length
 * that country's, check digits 02-98 and the ISO 7064 mod 97-10 check.
 */
static bool valid_iban(const unsigned char *s, size_t n)
{
	unsigned char c[IBAN_MAX];
	size_t m = 0;
	bool spaced = n > 4 && s[4] == ' ';
	if (n == 0 || s[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++) {
		bool want_space = spaced && i % 5 == 4;
		if ((s[i] == ' ') != want_space)
			return false;
		if (want_space)
			continue;
		if (!is_alnum(s[i]) || m == IBAN_MAX)
			return false;
		c[m++] = to_upper(s[i]);
	}
	if (m < 4 || !is_alpha(c[0]) || !is_alpha(c[1]) || !is_digit(c[2]) ||
	    !is_digit(c[3]))
		return false;
	if (iban_length(c[0], c[1]) != m)
		return false;
	unsigned check = dec_value(c + 2, 2);
	if (check < 2 || check > 98)
		return false;

	/* The BBAN, then country code and check digits; letters are 10-35. */
	unsigned r = 0;
	for (size_t j = 0; j < m; j++) {
		unsigned char x = c[(j + 4) % m];
		if (is_digit(x))
			r = (r * 10 + (unsigned)(x - '0')) % 97;
		else
			r = (r * 100 + (unsigned)(x - 'A' + 10)) % 97;
	}
	return r == 1;
}

/* ---- Payment cards ------------------------------------------------------- */

#define CARD_MAX 19

static unsigned card_prefix(const unsigned char *d, size_t k)
{
	return dec_value(d, k);
}

/* Known issuer ranges (IIN) and the lengths each brand issues. */
static bool card_brand_ok(const unsigned char *d, size_t n)
{
	unsigned p2 = card_prefix(d, 2), p3 = card_prefix(d, 3);
	unsigned p4 = card_prefix(d, 4), p6 = card_prefix(d, 6);
	if (d[0] == '4') /* Visa */
		return n == 13 || n == 16 || n == 19;
	if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
		return n == 16;	  /* Mastercard */
	if (p2 == 34 || p2 == 37) /* American Express */
		return n == 15;
	if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649) ||
	    (p6 >= 622126 && p6 <= 622925)) /* Discover */
		return n >= 16;
	if (p4 >= 3528 && p4 <= 3589) /* JCB */
		return n >= 16;
	if (p2 == 36 || p2 == 38 || (p3 >= 300 && p3 <= 305)) /* Diners */
		return n >= 14;
	if (p2 == 62) /* UnionPay */
		return n >= 16;
	return false;
}

static bool luhn_ok(const unsigned char *d, size_t n)
{
	unsigned sum = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned v = (unsigned)(d[n - 1 - i] - '0');
		if (i % 2 == 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

/*
 * 13-19 digits, in one run or in the printed groupings (4-4-4-4 and its
 * shorter or longer variants, 4-6-5 and 4-6-4) with spaces or dashes,
 * not mixed; Luhn; a known brand with one of its lengths.
 */
static bool valid_card(const unsigned char *s, size_t n)
{
	unsigned char d[CARD_MAX];
	size_t nd = 0, ng = 0, cur = 0;
	unsigned char sep = 0;
	size_t glen[CARD_MAX];
	for (size_t i = 0; i < n; i++) {
		if (is_digit(s[i])) {
			if (nd == CARD_MAX)
				return false;
			d[nd++] = s[i];
			cur++;
		} else if (s[i] == ' ' || s[i] == '-') {
			if (cur == 0 || (sep != 0 && s[i] != sep))
				return false;
			sep = s[i];
			glen[ng++] = cur;
			cur = 0;
		} else {
			return false;
		}
	}
	if (cur == 0 || nd < 13)
		return false;
	glen[ng++] = cur;
	if (ng > 1) {
		bool fours = true;
		for (size_t k = 0; k + 1 < ng; k++)
			fours = fours && glen[k] == 4;
		bool amex = ng == 3 && glen[0] == 4 && glen[1] == 6 &&
			    (glen[2] == 4 || glen[2] == 5);
		if (!fours && !amex)
			return false;
	}
	return luhn_ok(d, nd) && card_brand_ok(d, nd);
}

/* ---- IP addresses -------------------------------------------------------- */

/* Dotted quad; each octet 0-255 without leading zeros ("0" itself is fine). */
static bool valid_ipv4(const unsigned char *s, size_t n)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i == n || s[i] != '.')
				return false;
			i++;
		}
		size_t b = i;
		while (i < n && i - b < 3 && is_digit(s[i]))
			i++;
		size_t len = i - b;
		if (len == 0 || (len > 1 && s[b] == '0') ||
		    dec_value(s + b, len) > 255)
			return false;
	}
	return i == n;
}

/*
 * Eight groups of 1-4 hex digits, or fewer with exactly one '::' standing
 * for the missing ones; the last two groups may be written as an IPv4
 * address. Hex-only words joined by '::' (C++'s "A::B", "dead::beef") are
 * no addresses in practice: at least one decimal digit is required.
 */
static bool valid_ipv6(const unsigned char *s, size_t n)
{
	size_t i = 0, groups = 0;
	bool compressed = false, decimal = false;

	if (n >= 1 && s[0] == ':') {
		if (n < 2 || s[1] != ':')
			return false;
		compressed = true;
		i = 2;
	}
	while (i < n) {
		size_t b = i;
		while (i < n && is_hex(s[i]) && i - b < 5)
			i++;
		if (i < n && s[i] == '.') {
			/* An IPv4 tail stands for the last two groups. */
			if (!valid_ipv4(s + b, n - b))
				return false;
			groups += 2;
			decimal = true;
			i = n;
			break;
		}
		if (i == b || i - b > 4)
			return false;
		for (size_t j = b; j < i; j++)
			decimal = decimal || is_digit(s[j]);
		if (++groups > 8)
			return false;
		if (i == n)
			break;
		if (s[i] != ':')
			return false;
		i++;
		if (i < n && s[i] == ':') {
			if (compressed)
				return false;
			compressed = true;
			i++;
		} else if (i == n) {
			return false; /* a single trailing ':' */
		}
	}
	if (!decimal)
		return false;
	return compressed ? groups <= 7 : groups == 8;
}

/* ---- National identifiers ------------------------------------------------ */

/*
 * UK National Insurance number: prefix letters (first not D F I Q U V,
 * second not D F I O Q U V, and not BG GB KN NK NT TN ZZ), six digits and
 * a suffix A-D; single spaces allowed between the prefix, the digit pairs
 * and the suffix; either case.
 */
static bool valid_uk_nino(const unsigned char *s, size_t n)
{
	unsigned char c[9];
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			if (m < 2 || m % 2 != 0 || i + 1 == n ||
			    s[i + 1] == ' ')
				return false;
			continue;
		}
		if (m == 9)
			return false;
		c[m++] = to_upper(s[i]);
	}
	if (m != 9)
		return false;
	for (size_t k = 2; k < 8; k++)
		if (!is_digit(c[k]))
			return false;
	if (c[8] < 'A' || c[8] > 'D')
		return false;
	if (!is_alpha(c[0]) || !is_alpha(c[1]))
		return false;
	if (memchr("DFIQUV", c[0], 6) || memchr("DFIOQUV", c[1], 7))
		return false;
	static const char bad[][2] = {{'B', 'G'}, {'G', 'B'}, {'K', 'N'},
				      {'N', 'K'}, {'N', 'T'}, {'T', 'N'},
				      {'Z', 'Z'}};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
		if (c[0] == bad[k][0] && c[1] == bad[k][1])
			return false;
	return true;
}

/*
 * US Social Security number AAA-GG-SSSS, with dashes, spaces or nothing
 * (one kind); area not 000, 666 or 900-999, group not 00, serial not 0000.
 */
static bool valid_us_ssn(const unsigned char *s, size_t n)
{
	unsigned char d[9];
	if (n == 9) {
		memcpy(d, s, 9);
	} else if (n == 11 && (s[3] == '-' || s[3] == ' ') && s[6] == s[3]) {
		memcpy(d, s, 3);
		memcpy(d + 3, s + 4, 2);
		memcpy(d + 5, s + 7, 4);
	} else {
		return false;
	}
	for (size_t i = 0; i < 9; i++)
		if (!is_digit(d[i]))
			return false;
	unsigned area = dec_value(d, 3);
	if (area == 0 || area == 666 || area >= 900)
		return false;
	return dec_value(d + 3, 2) != 0 && dec_value(d + 5, 4) != 0;
}

/* ---- Dispatch ------------------------------------------------------------ */

bool pwb__pii_validate(pwb__pii_kind k, const char *s, size_t n)
{
	if (!s)
		return false;
	const unsigned char *u = (const unsigned char *)s;
	switch (k) {
	case PWB__PII_EMAIL:
		return valid_email(u, n);
	case PWB__PII_PHONE:
		return valid_phone(u, n);
	case PWB__PII_IBAN:
		return valid_iban(u, n);
	case PWB__PII_CARD:
		return valid_card(u, n);
	case PWB__PII_IPV4:
		return valid_ipv4(u, n);
	case PWB__PII_IPV6:
		return valid_ipv6(u, n);
	case PWB__PII_UK_NINO:
		return valid_uk_nino(u, n);
	case PWB__PII_US_SSN:
		return valid_us_ssn(u, n);
	case PWB__PII_N:
		break;
	}
	return false;
}

/* ---- Context ------------------------------------------------------------- */

static bool is_num_joiner(unsigned char c)
{
	return c == '.' || c == ',' || c == '-' || c == '/';
}

bool pwb__pii_context_ok(pwb__pii_kind k, const char *text, size_t len,
			 size_t start, size_t end)
{
	if (!text || start > end || end > len)
		return false;
	const unsigned char *t = (const unsigned char *)text;
	unsigned char b1 = start >= 1 ? t[start - 1] : 0;
	unsigned char b2 = start >= 2 ? t[start - 2] : 0;
	unsigned char a1 = end < len ? t[end] : 0;
	unsigned char a2 = end + 1 < len ? t[end + 1] : 0;

	switch (k) {
	case PWB__PII_PHONE:
	case PWB__PII_CARD:
	case PWB__PII_US_SSN:
		/* A piece of a longer number: 1.5, 3,141, 12-34, 1/2. */
		return !(is_num_joiner(b1) && is_digit(b2)) &&
		       !(is_num_joiner(a1) && is_digit(a2));
	case PWB__PII_IPV4:
		/* 1.2.3.4 in 1.2.3.4.5, or the tail of an IPv6 address. */
		return !(b1 == '.' && is_digit(b2)) &&
		       !(a1 == '.' && is_digit(a2)) &&
		       !(b1 == ':' && (is_hex(b2) || b2 == ':'));
	case PWB__PII_IPV6:
		return !(b1 == ':' && (is_hex(b2) || b2 == ':')) &&
		       !(a1 == ':' && (is_hex(a2) || a2 == ':')) &&
		       !(b1 == '.' && is_digit(b2)) &&
		       !(a1 == '.' && is_digit(a2));
	case PWB__PII_EMAIL:
	case PWB__PII_IBAN:
	case PWB__PII_UK_NINO:
		return true;
	case PWB__PII_N:
		break;
	}
	return false;
}
