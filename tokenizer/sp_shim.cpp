// The C face of libsentencepiece (spm.h), behind the tokenizer API of
// tokenizer.h. Every entry point catches everything: a C++ exception must
// never unwind into C code, and running out of memory is an error to
// report, not a reason to abort.
// err.h has no extern "C" guard of its own; nb_fail lives in C code.
extern "C" {
#include "../runtime/base/err.h"
}
#include "spm.h"
#include "tokenizer.h" // NB_LEAD_SPACE_*

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace {

const char kSpace[] = "\xE2\x96\x81"; // "▁", SentencePiece's space

} // namespace

struct nb_spm {
    sentencepiece::SentencePieceProcessor sp;
    int n_pieces = 0;
    int bos = -1, eos = -1, unk = -1, pad = -1;
    std::string unk_surface;
    int lead_space = NB_LEAD_SPACE_NONE;
    size_t max_piece = 0;
};

namespace {

// SentencePiece messages may span lines and name its own source lines;
// nb_err holds one line meant for a user.
int fail_status(nb_err *e, const char *what, const sentencepiece::util::Status &st)
{
    std::string msg = st.error_message();
    if (msg.find("ParseFromArray") != std::string::npos)
        msg = "protobuf parse failed";
    for (char &c : msg)
        if (c == '\n' || c == '\r')
            c = ' ';
    while (!msg.empty() && (msg.back() == ' ' || msg.back() == '.'))
        msg.pop_back();
    return nb_fail(e, "%s (%s)", what, msg.c_str());
}

int fail_exception(nb_err *e, const char *what)
{
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return nb_fail(e, "%s: out of memory", what);
    } catch (const std::exception &x) {
        return nb_fail(e, "%s: %s", what, x.what());
    } catch (...) {
        return nb_fail(e, "%s: unknown C++ exception", what);
    }
}

// For the small lookups: libsentencepiece does not document which calls
// may throw, and none may unwind into C.
template <typename F, typename R> R guard(F f, R fallback) noexcept
{
    try {
        return f();
    } catch (...) {
        return fallback;
    }
}

bool in_range(const nb_spm *t, int id)
{
    return t && id >= 0 && id < t->n_pieces;
}

bool is_plain(const nb_spm *t, int id)
{
    return !t->sp.IsControl(id) && !t->sp.IsUnknown(id) && !t->sp.IsByte(id) &&
           !t->sp.IsUnused(id);
}

std::string decode_ids(const nb_spm *t, const std::vector<int> &ids)
{
    std::string out;
    if (!t->sp.Decode(ids, &out).ok())
        out.clear();
    return out;
}

// Which leading-space rule decode follows, found by asking decode itself:
// the model flags behind it are not reachable through the public API.
int probe_lead_space(const nb_spm *t)
{
    int ws = t->sp.PieceToId(kSpace);
    if (in_range(t, ws) && is_plain(t, ws)) {
        if (decode_ids(t, {ws}) == " ")
            return NB_LEAD_SPACE_NONE;
        return decode_ids(t, {ws, ws}).empty() ? NB_LEAD_SPACE_EMPTY : NB_LEAD_SPACE_FIRST;
    }
    // Without a bare "▁" piece FIRST and EMPTY decode alike.
    for (int id = 0; id < t->n_pieces; id++) {
        const std::string &p = t->sp.IdToPiece(id);
        if (is_plain(t, id) && p.size() > 3 && p.compare(0, 3, kSpace) == 0)
            return decode_ids(t, {id})[0] == ' ' ? NB_LEAD_SPACE_NONE : NB_LEAD_SPACE_FIRST;
    }
    return NB_LEAD_SPACE_NONE;
}

void describe(nb_spm *t)
{
    t->n_pieces = t->sp.GetPieceSize();
    t->bos = t->sp.bos_id();
    t->eos = t->sp.eos_id();
    t->unk = t->sp.unk_id();
    t->pad = t->sp.pad_id();
    // Decoding the lone unk id yields the model's unk surface exactly.
    t->unk_surface = decode_ids(t, {t->unk});
    t->lead_space = probe_lead_space(t);
    t->max_piece = t->unk_surface.size();
    for (int id = 0; id < t->n_pieces; id++)
        t->max_piece = std::max(t->max_piece, t->sp.IdToPiece(id).size());
}

nb_spm *load(const void *data, size_t size, const char *name, nb_err *e)
{
    if (size == 0) {
        nb_fail(e, "%s: empty, not a SentencePiece model", name);
        return nullptr;
    }
    std::unique_ptr<nb_spm> t(new nb_spm);
    std::string_view bytes(static_cast<const char *>(data), size);
    auto st = t->sp.LoadFromSerializedProto(bytes);
    if (!st.ok()) {
        std::string what = std::string(name) + ": not a SentencePiece model";
        fail_status(e, what.c_str(), st);
        return nullptr;
    }
    describe(t.get());
    return t.release();
}

} // namespace

extern "C" {

nb_spm *nb_spm_load_bytes(const void *data, size_t size, nb_err *e)
{
    if (!data && size) {
        nb_fail(e, "nb_spm_load_bytes: no data");
        return nullptr;
    }
    try {
        return load(data, size, "tokenizer bytes", e);
    } catch (...) {
        fail_exception(e, "tokenizer bytes");
        return nullptr;
    }
}

void nb_spm_free(nb_spm *t)
{
    delete t;
}

int nb_spm_vocab_size(const nb_spm *t)
{
    return t ? t->n_pieces : 0;
}

int nb_spm_bos(const nb_spm *t)
{
    return t ? t->bos : -1;
}

int nb_spm_eos(const nb_spm *t)
{
    return t ? t->eos : -1;
}

int nb_spm_unk(const nb_spm *t)
{
    return t ? t->unk : -1;
}

int nb_spm_pad(const nb_spm *t)
{
    return t ? t->pad : -1;
}

int nb_spm_encode(const nb_spm *t, const char *text, size_t len, int bos, int32_t **ids,
                  size_t *n, nb_err *e)
{
    if (ids)
        *ids = nullptr;
    if (n)
        *n = 0;
    if (!t || !ids || !n || (!text && len))
        return nb_fail(e, "nb_spm_encode: bad arguments");
    try {
        std::vector<int> v;
        auto st = t->sp.Encode(std::string_view(text ? text : "", len), &v);
        if (!st.ok())
            return fail_status(e, "tokenizer: encode", st);
        size_t lead = (bos && t->bos >= 0) ? 1 : 0;
        size_t count = v.size() + lead;
        // malloc(0) may return NULL, which would read as a failure.
        int32_t *out = static_cast<int32_t *>(std::malloc((count ? count : 1) * sizeof *out));
        if (!out)
            return nb_fail(e, "tokenizer: encode: out of memory");
        if (lead)
            out[0] = t->bos;
        for (size_t i = 0; i < v.size(); i++)
            out[lead + i] = v[i];
        *ids = out;
        *n = count;
        return 0;
    } catch (...) {
        return fail_exception(e, "tokenizer: encode");
    }
}

char *nb_spm_decode_n(const nb_spm *t, const int32_t *ids, size_t n, size_t *len,
                      nb_err *e)
{
    if (len)
        *len = 0;
    if (!t || (!ids && n)) {
        nb_fail(e, "nb_spm_decode: bad arguments");
        return nullptr;
    }
    // SentencePiece 0.1.97 indexes its piece table without a bounds check.
    for (size_t i = 0; i < n; i++) {
        if (!in_range(t, ids[i])) {
            nb_fail(e, "tokenizer: decode: id %ld at position %zu is out of range [0, %d)",
                    static_cast<long>(ids[i]), i, t->n_pieces);
            return nullptr;
        }
    }
    try {
        std::vector<int> v(ids, ids + n);
        std::string text;
        auto st = t->sp.Decode(v, &text);
        if (!st.ok()) {
            fail_status(e, "tokenizer: decode", st);
            return nullptr;
        }
        char *out = static_cast<char *>(std::malloc(text.size() + 1));
        if (!out) {
            nb_fail(e, "tokenizer: decode: out of memory");
            return nullptr;
        }
        std::memcpy(out, text.data(), text.size());
        out[text.size()] = '\0';
        if (len)
            *len = text.size();
        return out;
    } catch (...) {
        fail_exception(e, "tokenizer: decode");
        return nullptr;
    }
}

const char *nb_spm_piece(const nb_spm *t, int id)
{
    // The string lives in the loaded model, so the pointer stays valid.
    return in_range(t, id) ? guard([&] { return t->sp.IdToPiece(id).c_str(); }, "") : nullptr;
}

int nb_spm_piece_to_id(const nb_spm *t, const char *piece)
{
    if (!t)
        return -1;
    if (!piece)
        return t->unk;
    return guard([&] { return t->sp.PieceToId(piece); }, t->unk);
}

int nb_spm_is_control(const nb_spm *t, int id)
{
    return in_range(t, id) && guard([&] { return t->sp.IsControl(id); }, false);
}

int nb_spm_is_byte(const nb_spm *t, int id)
{
    return in_range(t, id) && guard([&] { return t->sp.IsByte(id); }, false);
}

int nb_spm_byte(const nb_spm *t, int id)
{
    if (!nb_spm_is_byte(t, id))
        return -1;
    const char *piece = nb_spm_piece(t, id); // "<0xAB>"
    std::string_view p(piece);
    if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                         : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

const char *nb_spm_unk_surface(const nb_spm *t)
{
    return t ? t->unk_surface.c_str() : "";
}

int nb_spm_lead_space(const nb_spm *t)
{
    return t ? t->lead_space : NB_LEAD_SPACE_NONE;
}

size_t nb_spm_max_piece_bytes(const nb_spm *t)
{
    return t ? t->max_piece : 0;
}

} // extern "C"
