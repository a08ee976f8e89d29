/*
 * pii.h - personal data detectors: candidate patterns for Vectorscan and
 * validators that confirm a candidate (checksums and structure), so that a
 * detection is a real e-mail address, phone number, IBAN, payment card,
 * IP address or national identifier, not just a run of digits.
 */
#ifndef PWB_BOUNDS_PII_H
#define PWB_BOUNDS_PII_H

#include <stdbool.h>
#include <stddef.h>

typedef enum pwb__pii_kind {
	PWB__PII_EMAIL,
	PWB__PII_PHONE,
	PWB__PII_IBAN,
	PWB__PII_CARD,
	PWB__PII_IPV4,
	PWB__PII_IPV6,
	PWB__PII_UK_NINO,
	PWB__PII_US_SSN,
	PWB__PII_N
} pwb__pii_kind;

/* "email", "phone", "iban", "card", "ipv4", "ipv6", "uk_nino", "us_ssn". */
const char *pwb__pii_name(pwb__pii_kind k);

/*
 * The Vectorscan pattern that finds candidates of kind k. It is compiled
 * with HS_FLAG_SOM_LEFTMOST (and the flags below), so every match has a
 * start; a candidate may be reported at several end offsets, and the
 * caller keeps the longest valid one among overlapping candidates.
 */
const char *pwb__pii_pattern(pwb__pii_kind k);
/* Extra hs_compile flags for k (e.g. HS_FLAG_CASELESS), besides
 * HS_FLAG_SOM_LEFTMOST. */
unsigned pwb__pii_flags(pwb__pii_kind k);

/*
 * Is s[0..n) a valid value of kind k? Separators (spaces, dashes, dots
 * where the format allows them) are accepted; checksums are checked
 * (Luhn for cards, ISO 13616 mod-97 and the country's length for IBANs),
 * and so are the structural rules (SSN areas 000, 666 and 900-999 and
 * group 00 and serial 0000 are invalid; NINO prefixes and suffix letters;
 * IPv4 octets <= 255; IPv6 groups and '::'; e-mail local part and domain
 * labels; phone numbers 7 to 15 digits, E.164 when written with '+').
 * The text around the candidate is not looked at.
 */
bool pwb__pii_validate(pwb__pii_kind k, const char *s, size_t n);

/*
 * Does the candidate text[start..end) stand on its own in text[0..len)?
 * Vectorscan has no lookaround, so no pattern can keep "1.2.3.4" out of
 * the version string "1.2.3.4.5" or a card number out of the decimal
 * "0.4111111111111111"; this looks at the bytes just around the candidate
 * and says no when it is a piece of a longer number (a digit joined to it
 * by '.', ',', '-' or '/') or of a longer address. Call it for each
 * candidate that pwb__pii_validate() accepts. False when the span is not
 * inside text.
 */
bool pwb__pii_context_ok(pwb__pii_kind k, const char *text, size_t len,
			 size_t start, size_t end);

#endif
