/*
 * The data plane's wire format (see rel.h): the Genie header and the
 * Ethernet/IPv4/UDP frame around it, encoded and checked field by field.
 * Every length is checked against the bytes at hand before it is used:
 * this is what hostile frames meet first (tests/fuzz/rel_packet_fuzz.c).
 */
#include <errno.h>
#include <string.h>

#include "gn_error.h"
#include "rel.h"

/* ---- wire --------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

void gn_rel_hdr_encode(const struct gn_rel_hdr *h, uint8_t *o)
{
	memset(o, 0, GN_REL_HDR_SIZE);
	put32(o, h->magic);
	o[4] = h->version;
	o[5] = h->type;
	put16(o + 6, h->flags);
	put64(o + 8, h->session);
	put64(o + 16, h->msg_id);
	put32(o + 24, h->seq);
	put32(o + 28, h->ack);
	put32(o + 32, h->sack);
	put16(o + 36, h->credits);
	put16(o + 38, h->payload_len);
	put32(o + 40, h->pkt_idx);
	put32(o + 44, h->pkt_count);
	put64(o + 48, h->msg_len);
	put32(o + 56, h->csum);
}

int gn_rel_hdr_decode(const uint8_t *in, size_t avail, struct gn_rel_hdr *h)
{
	if (avail < GN_REL_HDR_SIZE)
		return gn_error_set(-EBADMSG,
				    "rel: %zu bytes, a Genie header needs %d",
				    avail, GN_REL_HDR_SIZE);
	h->magic = get32(in);
	h->version = in[4];
	h->type = in[5];
	h->flags = get16(in + 6);
	h->session = get64(in + 8);
	h->msg_id = get64(in + 16);
	h->seq = get32(in + 24);
	h->ack = get32(in + 28);
	h->sack = get32(in + 32);
	h->credits = get16(in + 36);
	h->payload_len = get16(in + 38);
	h->pkt_idx = get32(in + 40);
	h->pkt_count = get32(in + 44);
	h->msg_len = get64(in + 48);
	h->csum = get32(in + 56);
	if (h->magic != GN_REL_MAGIC)
		return gn_error_set(-EBADMSG,
				    "rel: magic 0x%08x, expected 0x%08x",
				    h->magic, GN_REL_MAGIC);
	if (h->version != GN_REL_VERSION)
		return gn_error_set(-EPROTO, "rel: version %u, expected %u",
				    h->version, GN_REL_VERSION);
	if (h->type < GN_REL_SYN || h->type > GN_REL_FIN)
		return gn_error_set(-EBADMSG, "rel: unknown packet type %u",
				    h->type);
	if (h->payload_len > avail - GN_REL_HDR_SIZE)
		return gn_error_set(-EBADMSG,
				    "rel: payload of %u bytes, %zu in the "
				    "frame",
				    h->payload_len, avail - GN_REL_HDR_SIZE);
	if (h->type != GN_REL_DATA && h->payload_len != 0 &&
	    !(h->type == GN_REL_ACK && (h->flags & GN_REL_F_SACKMAP)))
		return gn_error_set(-EBADMSG,
				    "rel: %u payload bytes on a control packet",
				    h->payload_len);
	return 0;
}

static uint16_t ip_csum(const uint8_t *p, int n)
{
	uint32_t sum = 0;

	for (int i = 0; i < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

void gn_rel_udp_encode(const struct gn_rel_addr *src,
		       const struct gn_rel_addr *dst, uint32_t payload_len,
		       uint8_t *o)
{
	uint16_t ip_len = (uint16_t)(20 + 8 + payload_len);
	uint16_t udp_len = (uint16_t)(8 + payload_len), cs;

	memcpy(o, dst->mac, 6);
	memcpy(o + 6, src->mac, 6);
	o[12] = 0x08;
	o[13] = 0x00;
	o += 14;
	memset(o, 0, 20);
	o[0] = 0x45;
	o[2] = (uint8_t)(ip_len >> 8);
	o[3] = (uint8_t)ip_len;
	o[6] = 0x40; /* don't fragment */
	o[8] = 64;
	o[9] = 17;
	for (int i = 0; i < 4; i++) {
		o[12 + i] = (uint8_t)(src->ip >> (24 - 8 * i));
		o[16 + i] = (uint8_t)(dst->ip >> (24 - 8 * i));
	}
	cs = ip_csum(o, 20);
	o[10] = (uint8_t)(cs >> 8);
	o[11] = (uint8_t)cs;
	o += 20;
	o[0] = (uint8_t)(src->port >> 8);
	o[1] = (uint8_t)src->port;
	o[2] = (uint8_t)(dst->port >> 8);
	o[3] = (uint8_t)dst->port;
	o[4] = (uint8_t)(udp_len >> 8);
	o[5] = (uint8_t)udp_len;
	o[6] = o[7] = 0;
}

int gn_rel_udp_parse(const uint8_t *f, size_t len, struct gn_rel_addr *src,
		     struct gn_rel_addr *dst)
{
	size_t ihl, ip_len, udp_len;

	if (len < 14 + 20 + 8)
		return gn_error_set(-EBADMSG, "rel: frame of %zu bytes", len);
	if (f[12] != 0x08 || f[13] != 0x00)
		return gn_error_set(-EBADMSG,
				    "rel: ethertype 0x%02x%02x, "
				    "expected IPv4",
				    f[12], f[13]);
	memcpy(dst->mac, f, 6);
	memcpy(src->mac, f + 6, 6);
	f += 14;
	len -= 14;
	ihl = (size_t)(f[0] & 0x0f) * 4;
	ip_len = (size_t)(f[2] << 8 | f[3]);
	if ((f[0] >> 4) != 4 || ihl < 20 || ihl + 8 > len || ip_len > len ||
	    ip_len < ihl + 8)
		return gn_error_set(-EBADMSG,
				    "rel: bad IPv4 header (version %u, "
				    "header %zu, length %zu, %zu in frame)",
				    f[0] >> 4, ihl, ip_len, len);
	if (f[9] != 17)
		return gn_error_set(-EBADMSG,
				    "rel: IP protocol %u, expected "
				    "UDP",
				    f[9]);
	if ((f[6] & 0x3f) != 0 || f[7] != 0 || (f[6] & 0x20))
		return gn_error_set(-EBADMSG, "rel: fragmented IPv4 packet");
	if (ip_csum(f, (int)ihl) != 0)
		return gn_error_set(-EBADMSG, "rel: bad IPv4 header checksum");
	src->ip = (uint32_t)f[12] << 24 | (uint32_t)f[13] << 16 |
		  (uint32_t)f[14] << 8 | f[15];
	dst->ip = (uint32_t)f[16] << 24 | (uint32_t)f[17] << 16 |
		  (uint32_t)f[18] << 8 | f[19];
	f += ihl;
	udp_len = (size_t)(f[4] << 8 | f[5]);
	if (udp_len < 8 || udp_len != ip_len - ihl)
		return gn_error_set(-EBADMSG,
				    "rel: UDP length %zu, IPv4 says %zu",
				    udp_len, ip_len - ihl);
	src->port = (uint16_t)(f[0] << 8 | f[1]);
	dst->port = (uint16_t)(f[2] << 8 | f[3]);
	return (int)(14 + ihl + 8);
}
