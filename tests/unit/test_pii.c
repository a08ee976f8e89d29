/* test_pii.c - the PII detectors: validators, context and the patterns. */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <hs/hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds/pii.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Validates a copy of s[0..n) in a buffer of exactly n bytes, so that the
 * address sanitizer catches a validator reading past the end.
 */
static bool validate_n(pwb__pii_kind k, const char *s, size_t n)
{
	char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	if (n)
		memcpy(copy, s, n);
	bool ok = pwb__pii_validate(k, copy, n);
	free(copy);
	return ok;
}

static void expect_all(pwb__pii_kind k, const char *const *list, size_t n,
		       bool want)
{
	for (size_t i = 0; i < n; i++)
		if (validate_n(k, list[i], strlen(list[i])) != want)
			fail_msg("%s '%s' should be %s", pwb__pii_name(k),
				 list[i], want ? "valid" : "invalid");
}

#define EXPECT_VALID(k, list) expect_all(k, list, COUNT(list), true)
#define EXPECT_INVALID(k, list) expect_all(k, list, COUNT(list), false)

/*
 * Every substitution of one character of s by another of the same class
 * (digit for digit, letter for letter) at positions from..n is invalid.
 */
static void expect_substitutions_invalid(pwb__pii_kind k, const char *s,
					 size_t from)
{
	char buf[64];
	size_t n = strlen(s);
	assert_true(n < sizeof(buf));
	for (size_t i = from; i < n; i++) {
		char orig = s[i];
		bool digit = orig >= '0' && orig <= '9';
		bool upper = orig >= 'A' && orig <= 'Z';
		if (!digit && !upper)
			continue;
		const char *alphabet =
		    digit ? "0123456789" : "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
		for (const char *a = alphabet; *a; a++) {
			if (*a == orig)
				continue;
			memcpy(buf, s, n);
			buf[i] = *a;
			if (validate_n(k, buf, n))
				fail_msg("%s '%.*s' (from '%s') should be "
					 "invalid",
					 pwb__pii_name(k), (int)n, buf, s);
		}
	}
}

/* ---- Names and patterns ---------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	static const char *const names[PWB__PII_N] = {
	    "email", "phone", "iban",	 "card",
	    "ipv4",  "ipv6",  "uk_nino", "us_ssn"};
	for (int k = 0; k < PWB__PII_N; k++) {
		assert_string_equal(pwb__pii_name((pwb__pii_kind)k), names[k]);
		assert_non_null(pwb__pii_pattern((pwb__pii_kind)k));
	}
	assert_null(pwb__pii_name(PWB__PII_N));
	assert_null(pwb__pii_pattern(PWB__PII_N));
	assert_int_equal(pwb__pii_flags(PWB__PII_N), 0);
	assert_false(pwb__pii_validate(PWB__PII_N, "x", 1));
	assert_false(pwb__pii_validate(PWB__PII_EMAIL, NULL, 0));
	assert_int_equal(pwb__pii_flags(PWB__PII_IBAN) & HS_FLAG_CASELESS,
			 HS_FLAG_CASELESS);
}

/* ---- E-mail ---------------------------------------------------------- */

static void test_email(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "jane.doe@example.org",
	    "j@example.co",
	    "first.last+tag@sub.example.co.uk",
	    "o'brien@example.ie",
	    "user_name-1@mail-server.example.com",
	    "x@a-b.io",
	    "X@EXAMPLE.ORG",
	    "1234@123.example.museum",
	    "!#$%&'*+-/=?^_`{|}~@example.org",
	    /* 64-byte local part */
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "@example.org",
	    /* 63-byte label */
	    "a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	    ".org",
	};
	static const char *const bad[] = {
	    "",
	    "@",
	    "@example.org",
	    "jane@",
	    "jane",
	    "jane.doe@example",
	    "jane..doe@example.org",
	    ".jane@example.org",
	    "jane.@example.org",
	    "jane@-example.org",
	    "jane@example-.org",
	    "jane@example..org",
	    "jane@.example.org",
	    "jane@example.org.",
	    "jane@example.c",
	    "jane@example.c0m",
	    "jane@example.123",
	    "jane@@example.org",
	    "jane@exa_mple.org",
	    "jane doe@example.org",
	    "\"jane\"@example.org",
	    "jane@[192.0.2.1]",
	    "j\xc3\xa4ne@example.org",
	    "jane@ex\xc3\xa4mple.org",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "@example.org",
	    "a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	    ".org",
	};
	EXPECT_VALID(PWB__PII_EMAIL, good);
	EXPECT_INVALID(PWB__PII_EMAIL, bad);
	/* A NUL inside is a byte like any other: invalid. */
	assert_false(validate_n(PWB__PII_EMAIL, "jane@exa\0mple.org", 17));
	assert_false(validate_n(PWB__PII_EMAIL, "ja\0ne@example.org", 17));
	/* The domain is at most 253 bytes. */
	char big[300];
	size_t n = 0;
	big[n++] = 'a';
	big[n++] = '@';
	while (n < 2 + 250) {
		memcpy(big + n, "abcdefghi.", 10);
		n += 10;
	}
	memcpy(big + n, "org", 3);
	n += 3;
	assert_false(validate_n(PWB__PII_EMAIL, big, n));
	assert_true(validate_n(PWB__PII_EMAIL, big, 2 + 240 + 3));
}

/* ---- Phone numbers --------------------------------------------------- */

static void test_phone(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "+44 20 7946 0958",	  "+442079460958",    "+1 (555) 123-4567",
	    "+1-555-123-4567",	  "+1.555.123.4567",  "(555) 123-4567",
	    "(555)123-4567",	  "555-123-4567",     "555.123.4567",
	    "555 123 4567",	  "1-800-555-0199",   "020 7946 0958",
	    "07700 900123",	  "07700900123",      "+33 6 12 34 56 78",
	    "06 12 34 56 78",	  "06.12.34.56.78",   "+44 (0)20 7946 0958",
	    "+49 (0) 30 1234567", "030 1234567",      "912 345 678",
	    "+49 30 12345678",	  "+353 1 234 5678",  "+4915123456789",
	    "+1234567",		  "+123456789012345", "0044 20 7946 0958",
	    "0033 6 12 34 56 78",
	};
	static const char *const bad[] = {
	    "",
	    "+",
	    "123456",
	    "+44 20 79",
	    "+0 20 7946 0958",
	    "+44 20 7946 0958 1234",
	    "+1234567890123456",
	    "2024-01-15",
	    "15.01.2024",
	    "01.12.2024",
	    "12/31/2024",
	    "4111 1111 1111 1111",
	    "4111-1111-1111-1111",
	    "1234 5698 7654 32",
	    "978-3-16-148410-0",
	    "192.168.100.200",
	    "555--123-4567",
	    "555-123-4567-",
	    "-555-123-4567",
	    " 555-123-4567",
	    "(555 123-4567",
	    "555) 123-4567",
	    "((555)) 123-4567",
	    "+44 (0)20 (7946) 0958",
	    "555-123 4567",
	    "555 123-4567",
	    "(555) 123-4567 ()",
	    "12345678",
	    "5551234567",
	    "0012345678",
	    "001-01-0001",
	    "0004 20 7946 0958",
	    "078-05-1120",
	    "1.234.567",
	    "12.345.678",
	    "1998-2004",
	    "555-1234",
	    "1-2-3-4-5-6-7-8",
	    "555-123-4567 x12",
	    "+44 20 7946 095a",
	    "+44 20 7946 0958\xc2\xa0",
	    "555-12345-67",
	};
	EXPECT_VALID(PWB__PII_PHONE, good);
	EXPECT_INVALID(PWB__PII_PHONE, bad);
	assert_false(validate_n(PWB__PII_PHONE, "+44 20 7946\0 0958", 17));
}

/* ---- IBAN ------------------------------------------------------------ */

/* Examples of the SWIFT IBAN registry, electronic form. */
static const char *const ibans[] = {
    "GB82WEST12345698765432",
    "GB29NWBK60161331926819",
    "DE89370400440532013000",
    "AT611904300234573201",
    "BE68539007547034",
    "CH9300762011623852957",
    "ES9121000418450200051332",
    "FI2112345600000785",
    "FR1420041010050500013M02606",
    "IE29AIBK93115212345678",
    "IT60X0542811101000000123456",
    "LC55HEMM000100010012001200023015",
    "MT84MALT011000012345MTLCAST001S",
    "NL91ABNA0417164300",
    "NO9386011117947",
    "PL61109010140000071219812874",
    "PT50000201231234567890154",
    "SE4550000000058398257466",
};

static void test_iban(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00",
	    "gb82west12345698765432",	   "gb82 West 1234 5698 7654 32",
	    "NO93 8601 1117 947",	   "FR14 2004 1010 0505 0001 3M02 606",
	};
	static const char *const bad[] = {
	    "",
	    "GB",
	    "GB82",
	    "GB83WEST12345698765432",
	    "DE88370400440532013000",
	    "GB82WEST1234569876543",
	    "GB82WEST123456987654321",
	    "XX82WEST12345698765432",
	    "US82WEST12345698765432",
	    "GB82 WEST12345698765432",
	    "GB82WEST 1234 5698 7654 32",
	    "GB82  WEST 1234 5698 7654 32",
	    "GB82 WEST 1234 5698 7654 32 ",
	    " GB82 WEST 1234 5698 7654 32",
	    "GB82-WEST-1234-5698-7654-32",
	    "GB82 WES T123 4569 8765 432",
	    "GBX2WEST12345698765432",
	    "1B82WEST12345698765432",
	    "GB82WEST1234569876543!",
	    "GB82WEST12345698765432GB82WEST12345698765432",
	};
	EXPECT_VALID(PWB__PII_IBAN, ibans);
	EXPECT_VALID(PWB__PII_IBAN, good);
	EXPECT_INVALID(PWB__PII_IBAN, bad);
	/* Mod 97-10 catches every substitution of one character. */
	for (size_t i = 0; i < COUNT(ibans); i++)
		expect_substitutions_invalid(PWB__PII_IBAN, ibans[i], 2);
	assert_false(validate_n(PWB__PII_IBAN,
				"GB82WEST1234569876\0"
				"432",
				22));
}

/* ---- Payment cards --------------------------------------------------- */

/* The test numbers the card networks and processors publish. */
static const char *const cards[] = {
    "4111111111111111",	   /* Visa */
    "4012888888881881",	   /* Visa */
    "4222222222222",	   /* Visa, 13 digits */
    "5555555555554444",	   /* Mastercard */
    "5105105105105100",	   /* Mastercard */
    "2223003122003222",	   /* Mastercard 2-series */
    "378282246310005",	   /* American Express */
    "371449635398431",	   /* American Express */
    "6011111111111117",	   /* Discover */
    "6011000990139424",	   /* Discover */
    "3530111333300000",	   /* JCB */
    "3566002020360505",	   /* JCB */
    "30569309025904",	   /* Diners Club, 14 digits */
    "38520000023237",	   /* Diners Club, 14 digits */
    "36227206271667",	   /* Diners Club, 14 digits */
    "6200000000000005",	   /* UnionPay */
    "6205500000000000004", /* UnionPay, 19 digits */
};

static void test_card(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "4111 1111 1111 1111", "4111-1111-1111-1111",
	    "3782 822463 10005",   "3782-822463-10005",
	    "3056 930902 5904",	   "6205 5000 0000 0000 004",
	    "4222 2222 2222 2",
	};
	static const char *const bad[] = {
	    "",
	    "4111111111111112",
	    "5555555555554445",
	    "378282246310006",
	    "411111111111111",	 /* a Visa digit short */
	    "41111111111111111", /* 17 digits */
	    "411111111111",	 /* 12 digits */
	    "41111111111111111111",
	    "0000000000000000", /* Luhn-valid, no brand */
	    "1234567812345670", /* Luhn-valid, no brand */
	    "3782822463100058", /* Amex prefix, 16 digits */
	    "5555555555554444555",
	    "4111-1111 1111-1111",
	    "4111  1111 1111 1111",
	    "4111 1111 1111 1111 ",
	    " 4111 1111 1111 1111",
	    "41111111 11111111",
	    "411 1111 1111 11111",
	    "4111.1111.1111.1111",
	    "4111 1111 1111 111a",
	};
	EXPECT_VALID(PWB__PII_CARD, cards);
	EXPECT_VALID(PWB__PII_CARD, good);
	EXPECT_INVALID(PWB__PII_CARD, bad);
	/* Luhn catches every substitution of one digit. */
	for (size_t i = 0; i < COUNT(cards); i++)
		expect_substitutions_invalid(PWB__PII_CARD, cards[i], 0);
	assert_false(validate_n(PWB__PII_CARD,
				"4111111111\0"
				"111111",
				16));
}

/* ---- IP addresses ---------------------------------------------------- */

static void test_ipv4(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "0.0.0.0", "10.0.0.1",     "192.168.1.1", "255.255.255.255",
	    "8.8.8.8", "172.16.254.1", "100.64.0.10",
	};
	static const char *const bad[] = {
	    "",		"256.1.1.1", "1.2.3",	   "1.2.3.4.5",
	    "01.2.3.4", "1.2.3.04",  "1.2.3.",	   ".1.2.3.4",
	    "1..2.3",	"1.2.3.4 ",  "a.b.c.d",	   "1234.1.1.1",
	    "1.2.3.-4", "1.2.3.256", "1.2.3.4/24", "00.0.0.0",
	};
	EXPECT_VALID(PWB__PII_IPV4, good);
	EXPECT_INVALID(PWB__PII_IPV4, bad);
	assert_false(validate_n(PWB__PII_IPV4, "1.2.3.4\0", 8));
}

static void test_ipv6(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
	    "2001:db8:85a3::8a2e:370:7334",
	    "2001:db8::1",
	    "::1",
	    "fe80::",
	    "fe80::1",
	    "FE80::ABCD:1",
	    "::ffff:192.0.2.1",
	    "64:ff9b::192.0.2.33",
	    "1:2:3:4:5:6:7::",
	    "::2:3:4:5:6:7:8",
	    "1::8",
	    "0:0:0:0:0:ffff:192.0.2.1",
	    "1:2:3:4:5::192.0.2.1",
	};
	static const char *const bad[] = {
	    "",
	    "::",
	    ":",
	    ":::",
	    "1::2::3",
	    "2001:db8:85a3:0000:0000:8a2e:0370",
	    "1:2:3:4:5:6:7:8:9",
	    "1:2:3:4:5:6:7:8::",
	    "1:2:3:4::5:6:7:8",
	    "12345::1",
	    "2001:db8::g",
	    "2001:db8:::1",
	    ":2001:db8::1",
	    "2001:db8::1:",
	    "::ffff:256.0.2.1",
	    "::ffff:192.0.2",
	    "::ffff:192.0.2.1:1",
	    "::ffff:192.0.02.1",
	    "1:2:3:4:5:6:7:192.0.2.1",
	    "12:30",
	    "12:30:45",
	    "00:1A:2B:3C:4D:5E",
	    "dead::beef",
	    "A::B",
	    "fe80::1%eth0",
	    "fe80::1 ",
	};
	EXPECT_VALID(PWB__PII_IPV6, good);
	EXPECT_INVALID(PWB__PII_IPV6, bad);
	assert_false(validate_n(PWB__PII_IPV6, "fe80::\0", 7));
}

/* ---- National identifiers ------------------------------------------- */

static void test_uk_nino(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "AB123456C",   "AB 12 34 56 C", "ab123456c", "AB123456 A",
	    "AB 123456 D", "CE123456A",	    "ZY123456B", "GA123456A",
	    "NA123456B",   "AB12 3456C",
	};
	static const char *const bad[] = {
	    "",		  "BG123456A",	 "GB123456A",
	    "KN123456A",  "NK123456A",	 "NT123456A",
	    "TN123456A",  "ZZ123456A",	 "QQ123456C",
	    "AB123456E",  "DA123456A",	 "FA123456A",
	    "IA123456A",  "QA123456A",	 "UA123456A",
	    "VA123456A",  "AD123456A",	 "AF123456A",
	    "AI123456A",  "AO123456A",	 "AQ123456A",
	    "AU123456A",  "AV123456A",	 "AB12345C",
	    "AB1234567C", "AB123456",	 "A1123456C",
	    "AB1 23456C", "AB  123456C", " AB123456C",
	    "AB123456C ", "AB12345AC",	 "AB123456CD",
	};
	EXPECT_VALID(PWB__PII_UK_NINO, good);
	EXPECT_INVALID(PWB__PII_UK_NINO, bad);
	assert_false(validate_n(PWB__PII_UK_NINO,
				"AB12\0"
				"3456C",
				9));
}

static void test_us_ssn(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "078-05-1120", "123-45-6789", "123 45 6789", "123456789",
	    "665-12-3456", "899-99-9999", "001-01-0001",
	};
	static const char *const bad[] = {
	    "",
	    "000-12-3456",
	    "666-12-3456",
	    "900-12-3456",
	    "999-12-3456",
	    "123-00-4567",
	    "123-45-0000",
	    "123-45 6789",
	    "12-345-6789",
	    "1234-56-789",
	    "123-45-678",
	    "123-45-67890",
	    "12345678",
	    "1234567890",
	    "abc-de-fghi",
	    "123_45_6789",
	    "000000000",
	    "666123456",
	    "123.45.6789",
	};
	EXPECT_VALID(PWB__PII_US_SSN, good);
	EXPECT_INVALID(PWB__PII_US_SSN, bad);
	assert_false(validate_n(PWB__PII_US_SSN,
				"123-45-\0"
				"789",
				11));
}

/* ---- Any bytes ------------------------------------------------------- */

/*
 * Random strings, biased towards the characters the formats use, through
 * every validator in exact-size buffers: no crash, no read past the end
 * (under the sanitizers), the same answer twice.
 */
static void test_any_bytes(void **state)
{
	(void)state;
	static const char alphabet[] = "0123456789 -.:+()@ABCDEFabcdefGWXZ";
	uint64_t x = 0x9e3779b97f4a7c15u;
	char buf[48];
	for (int iter = 0; iter < 200000; iter++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t n = (size_t)(x % sizeof(buf));
		uint64_t y = x;
		for (size_t i = 0; i < n; i++) {
			y = y * 6364136223846793005u + 1442695040888963407u;
			unsigned r = (unsigned)(y >> 33);
			buf[i] =
			    (r & 7) == 0
				? (char)(r >> 8)
				: alphabet[(r >> 8) % (sizeof(alphabet) - 1)];
		}
		for (int k = 0; k < PWB__PII_N; k++) {
			bool a = validate_n((pwb__pii_kind)k, buf, n);
			bool b = pwb__pii_validate((pwb__pii_kind)k, buf, n);
			assert_int_equal(a, b);
		}
	}
}

/* ---- Context --------------------------------------------------------- */

static bool context_of(pwb__pii_kind k, const char *text, const char *cand)
{
	const char *p = strstr(text, cand);
	assert_non_null(p);
	size_t start = (size_t)(p - text);
	return pwb__pii_context_ok(k, text, strlen(text), start,
				   start + strlen(cand));
}

static void test_context(void **state)
{
	(void)state;
	assert_false(context_of(PWB__PII_IPV4, "v 1.2.3.4.5", "1.2.3.4"));
	assert_false(context_of(PWB__PII_IPV4, "v 1.2.3.4.5", "2.3.4.5"));
	assert_true(context_of(PWB__PII_IPV4, "at 10.0.0.1.", "10.0.0.1"));
	assert_true(context_of(PWB__PII_IPV4, "10.0.0.1/24", "10.0.0.1"));
	assert_true(context_of(PWB__PII_IPV4, "10.0.0.1:8080", "10.0.0.1"));
	assert_true(context_of(PWB__PII_IPV4, "IP:10.0.0.1", "10.0.0.1"));
	assert_false(context_of(PWB__PII_IPV4, "::ffff:1.2.3.4", "1.2.3.4"));
	assert_false(context_of(PWB__PII_CARD, "0.4111111111111111",
				"4111111111111111"));
	assert_false(context_of(PWB__PII_CARD, "4111111111111111,50",
				"4111111111111111"));
	assert_true(context_of(PWB__PII_CARD, "card 4111111111111111, exp",
			       "4111111111111111"));
	assert_false(
	    context_of(PWB__PII_PHONE, "A-12-555-123-4567", "555-123-4567"));
	assert_false(
	    context_of(PWB__PII_PHONE, "555-123-4567-89", "555-123-4567"));
	assert_true(
	    context_of(PWB__PII_PHONE, "call 555-123-4567.", "555-123-4567"));
	assert_false(
	    context_of(PWB__PII_US_SSN, "1-078-05-1120", "078-05-1120"));
	assert_false(
	    context_of(PWB__PII_IPV6, "1:2:3:4:5:6:7:8:9", "2:3:4:5:6:7:8:9"));
	assert_true(context_of(PWB__PII_IPV6, "IP:2001:db8::1", "2001:db8::1"));
	assert_true(context_of(PWB__PII_EMAIL, "x jane@example.org",
			       "jane@example.org"));
	/* Spans outside the text. */
	assert_false(pwb__pii_context_ok(PWB__PII_EMAIL, "abc", 3, 2, 1));
	assert_false(pwb__pii_context_ok(PWB__PII_EMAIL, "abc", 3, 0, 4));
	assert_false(pwb__pii_context_ok(PWB__PII_EMAIL, NULL, 0, 0, 0));
	assert_false(pwb__pii_context_ok(PWB__PII_N, "abc", 3, 0, 3));
	/* At both ends of the text. */
	assert_true(pwb__pii_context_ok(PWB__PII_IPV4, "1.2.3.4", 7, 0, 7));
}

/* ---- Patterns and scanning ------------------------------------------ */

typedef struct span {
	int kind;
	size_t start, end;
} span;

#define MAX_SPANS 256

typedef struct scan_ctx {
	const char *text;
	size_t len;
	span found[MAX_SPANS];
	size_t n;
	size_t candidates;
} scan_ctx;

static int on_match(unsigned int id, unsigned long long from,
		    unsigned long long to, unsigned int flags, void *user)
{
	(void)flags;
	scan_ctx *c = user;
	c->candidates++;
	pwb__pii_kind k = (pwb__pii_kind)id;
	if (!validate_n(k, c->text + from, (size_t)(to - from)) ||
	    !pwb__pii_context_ok(k, c->text, c->len, (size_t)from, (size_t)to))
		return 0;
	assert_true(c->n < MAX_SPANS);
	c->found[c->n++] = (span){(int)id, (size_t)from, (size_t)to};
	return 0;
}

/* Validates every candidate and keeps none: for random text. */
static int on_count(unsigned int id, unsigned long long from,
		    unsigned long long to, unsigned int flags, void *user)
{
	(void)flags;
	scan_ctx *c = user;
	c->candidates++;
	assert_true(from <= to && to <= c->len);
	pwb__pii_kind k = (pwb__pii_kind)id;
	if (validate_n(k, c->text + from, (size_t)(to - from)))
		(void)pwb__pii_context_ok(k, c->text, c->len, (size_t)from,
					  (size_t)to);
	return 0;
}

/* Longer first, then earlier: the order in which overlaps are resolved. */
static int by_length(const void *a, const void *b)
{
	const span *x = a, *y = b;
	size_t lx = x->end - x->start, ly = y->end - y->start;
	if (lx != ly)
		return lx > ly ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Per kind, keeps the longest valid span among overlapping ones. */
static size_t keep_longest(span *s, size_t n)
{
	qsort(s, n, sizeof(*s), by_length);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		bool overlaps = false;
		for (size_t j = 0; j < kept && !overlaps; j++)
			overlaps = s[j].kind == s[i].kind &&
				   s[j].start < s[i].end &&
				   s[i].start < s[j].end;
		if (!overlaps)
			s[kept++] = s[i];
	}
	return kept;
}

static hs_database_t *compile_all(void)
{
	const char *pats[PWB__PII_N];
	unsigned flags[PWB__PII_N], ids[PWB__PII_N];
	for (int k = 0; k < PWB__PII_N; k++) {
		pats[k] = pwb__pii_pattern((pwb__pii_kind)k);
		flags[k] =
		    HS_FLAG_SOM_LEFTMOST | pwb__pii_flags((pwb__pii_kind)k);
		ids[k] = (unsigned)k;
	}
	hs_database_t *db = NULL;
	hs_compile_error_t *err = NULL;
	if (hs_compile_multi(pats, flags, ids, PWB__PII_N, HS_MODE_BLOCK, NULL,
			     &db, &err) != HS_SUCCESS) {
		char msg[256];
		snprintf(msg, sizeof(msg), "pattern %d (%s): %s",
			 err->expression,
			 err->expression >= 0
			     ? pwb__pii_name((pwb__pii_kind)err->expression)
			     : "?",
			 err->message);
		hs_free_compile_error(err);
		fail_msg("%s", msg);
	}
	return db;
}

typedef struct expected {
	pwb__pii_kind kind;
	const char *text; /* occurs once in the sentence */
} expected;

typedef struct scan_case {
	const char *sentence;
	expected want[8];
	size_t n_want;
} scan_case;

static void scan_one(hs_database_t *db, hs_scratch_t *scratch,
		     const scan_case *sc)
{
	scan_ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->text = sc->sentence;
	c->len = strlen(sc->sentence);
	assert_int_equal(
	    hs_scan(db, c->text, (unsigned)c->len, 0, scratch, on_match, c),
	    HS_SUCCESS);
	size_t n = keep_longest(c->found, c->n);

	bool ok = n == sc->n_want;
	for (size_t i = 0; i < sc->n_want && ok; i++) {
		const char *p = strstr(sc->sentence, sc->want[i].text);
		assert_non_null(p);
		size_t start = (size_t)(p - sc->sentence);
		size_t end = start + strlen(sc->want[i].text);
		bool hit = false;
		for (size_t j = 0; j < n && !hit; j++)
			hit = c->found[j].kind == (int)sc->want[i].kind &&
			      c->found[j].start == start &&
			      c->found[j].end == end;
		ok = hit;
	}
	if (!ok) {
		for (size_t j = 0; j < n; j++)
			print_error(
			    "found %s [%zu,%zu) '%.*s'\n",
			    pwb__pii_name((pwb__pii_kind)c->found[j].kind),
			    c->found[j].start, c->found[j].end,
			    (int)(c->found[j].end - c->found[j].start),
			    c->text + c->found[j].start);
		free(c);
		fail_msg("'%s': want %zu spans, found %zu", sc->sentence,
			 sc->n_want, n);
	}
	free(c);
}

static void test_scan(void **state)
{
	(void)state;
	static const scan_case cases[] = {
	    {"Mail me at jane.doe@example.org or call +44 20 7946 0958; card "
	     "4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32.",
	     {{PWB__PII_EMAIL, "jane.doe@example.org"},
	      {PWB__PII_PHONE, "+44 20 7946 0958"},
	      {PWB__PII_CARD, "4111 1111 1111 1111"},
	      {PWB__PII_IBAN, "GB82 WEST 1234 5698 7654 32"}},
	     4},
	    {"Server 192.168.1.20 and 2001:db8::8a2e:370:7334 answered; NINO "
	     "AB 12 34 56 C, SSN 078-05-1120, Amex 3782 822463 10005, call "
	     "(555) 123-4567 or 1-800-555-0199.",
	     {{PWB__PII_IPV4, "192.168.1.20"},
	      {PWB__PII_IPV6, "2001:db8::8a2e:370:7334"},
	      {PWB__PII_UK_NINO, "AB 12 34 56 C"},
	      {PWB__PII_US_SSN, "078-05-1120"},
	      {PWB__PII_CARD, "3782 822463 10005"},
	      {PWB__PII_PHONE, "(555) 123-4567"},
	      {PWB__PII_PHONE, "1-800-555-0199"}},
	     7},
	    {"Write to <o'brien@mail.example.ie>, not noreply@localhost or "
	     "a@b.c; peers ::ffff:192.0.2.1 and fe80::1; account "
	     "nl91abna0417164300; Paris 06.12.34.56.78, Berlin "
	     "+49 (0) 30 1234567.",
	     {{PWB__PII_EMAIL, "o'brien@mail.example.ie"},
	      {PWB__PII_IPV6, "::ffff:192.0.2.1"},
	      {PWB__PII_IPV6, "fe80::1"},
	      {PWB__PII_IBAN, "nl91abna0417164300"},
	      {PWB__PII_PHONE, "06.12.34.56.78"},
	      {PWB__PII_PHONE, "+49 (0) 30 1234567"}},
	     6},
	    /* Decoys only. */
	    {"On 2024-01-15 (15.01.2024) order #12345678 shipped: version "
	     "1.2.3.4.5, ISBN 978-3-16-148410-0, ref 4111111111111112, from "
	     "1998-2004, at 10:30:45, in C++ A::B, amount 1.234.567, "
	     "range 999.1.1.1, build 2.0.0.1.5-rc.4.5.6.7.8, pi "
	     "3.14159265358979, scores re 12 34 56 a, zip 90210-1234, ticket "
	     "4421-8812, call at 10:30 on 15 01 2024",
	     {{0, NULL}},
	     0},
	    {"", {{0, NULL}}, 0},
	};
	hs_database_t *db = compile_all();
	hs_scratch_t *scratch = NULL;
	assert_int_equal(hs_alloc_scratch(db, &scratch), HS_SUCCESS);
	for (size_t i = 0; i < COUNT(cases); i++)
		scan_one(db, scratch, &cases[i]);
	hs_free_scratch(scratch);
	hs_free_database(db);
}

/* Random text through the compiled patterns, every candidate validated. */
static void test_scan_any_bytes(void **state)
{
	(void)state;
	hs_database_t *db = compile_all();
	hs_scratch_t *scratch = NULL;
	assert_int_equal(hs_alloc_scratch(db, &scratch), HS_SUCCESS);
	static const char alphabet[] = "0123456789 -.:+()@ABab,/";
	uint64_t x = 88172645463325252u;
	scan_ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	char *buf = malloc(4096);
	assert_non_null(buf);
	size_t total = 0;
	for (int iter = 0; iter < 200; iter++) {
		size_t n = 0;
		while (n < 4096) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			unsigned r = (unsigned)(x >> 20);
			buf[n++] =
			    (r & 15) == 0
				? (char)r
				: alphabet[(r >> 4) % (sizeof(alphabet) - 1)];
		}
		memset(c, 0, sizeof(*c));
		c->text = buf;
		c->len = n;
		assert_int_equal(
		    hs_scan(db, buf, (unsigned)n, 0, scratch, on_count, c),
		    HS_SUCCESS);
		total += c->candidates;
	}
	assert_true(total > 0);
	free(buf);
	free(c);
	hs_free_scratch(scratch);
	hs_free_database(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_email),
	    cmocka_unit_test(test_phone),
	    cmocka_unit_test(test_iban),
	    cmocka_unit_test(test_card),
	    cmocka_unit_test(test_ipv4),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_uk_nino),
	    cmocka_unit_test(test_us_ssn),
	    cmocka_unit_test(test_any_bytes),
	    cmocka_unit_test(test_context),
	    cmocka_unit_test(test_scan),
	    cmocka_unit_test(test_scan_any_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
