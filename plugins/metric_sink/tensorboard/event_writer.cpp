#include "event_writer.h"

#include <array>
#include <bit>
#include <cstring>

namespace loom::tfevents {

namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// Wire types of the protobuf encoding.
constexpr int kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

template <class T>
void append_le(std::string& out, T value) {
  static_assert(std::endian::native == std::endian::little, "event files are little-endian; add a byte swap");
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

}  // namespace

uint32_t crc32c(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) crc = kCrc32cTable[(crc ^ c) & 0xFFu] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(std::string_view data) {
  const uint32_t crc = crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string frame_record(std::string_view data) {
  std::string length;
  append_le<uint64_t>(length, data.size());
  std::string out = length;
  append_le<uint32_t>(out, masked_crc32c(length));
  out.append(data);
  append_le<uint32_t>(out, masked_crc32c(data));
  return out;
}

void ProtoWriter::varint(uint64_t value) {
  while (value >= 0x80) {
    out_.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out_.push_back(static_cast<char>(value));
}

void ProtoWriter::key(int field, int wire_type) { varint((static_cast<uint64_t>(field) << 3) | wire_type); }

// int64 fields are varints of the two's-complement value: a negative step takes ten bytes, as in protobuf.
void ProtoWriter::varint_field(int field, uint64_t value) {
  key(field, kVarint);
  varint(value);
}

void ProtoWriter::double_field(int field, double value) {
  key(field, kFixed64);
  append_le(out_, value);
}

void ProtoWriter::float_field(int field, float value) {
  key(field, kFixed32);
  append_le(out_, value);
}

void ProtoWriter::bytes_field(int field, std::string_view bytes) {
  key(field, kLengthDelimited);
  varint(bytes.size());
  out_.append(bytes);
}

std::string file_version_event(double wall_time, std::string_view version) {
  ProtoWriter event;
  event.double_field(1, wall_time);
  event.bytes_field(3, version);
  return event.bytes();
}

std::string scalars_event(double wall_time, int64_t step, const std::vector<Scalar>& scalars) {
  ProtoWriter summary;
  for (const Scalar& s : scalars) {
    ProtoWriter value;
    value.bytes_field(1, s.tag);
    value.float_field(2, s.value);
    summary.bytes_field(1, value.bytes());
  }
  ProtoWriter event;
  event.double_field(1, wall_time);
  // proto3 omits default values; a reader sees step 0 either way.
  if (step != 0) event.varint_field(2, static_cast<uint64_t>(step));
  event.bytes_field(5, summary.bytes());
  return event.bytes();
}

}  // namespace loom::tfevents
