// TensorBoard's event file format, written by hand: TFRecord framing around serialized `Event` protobufs.
//
// Why not libprotobuf: the sink needs four messages' worth of one direction (encode only), and generating
// them would add protoc and a .proto copy to the build, plus a libprotobuf whose version must match the
// generated code. The encoder below is ~100 lines; tests check CRC32C against the standard test vector, a
// frame against bytes written by TensorBoard's own Python writer, and whole files read back with
// TensorBoard's EventAccumulator (tests/python/read_tensorboard.py).
//
// The subset of tensorflow/core/util/event.proto and framework/summary.proto written here:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
// TFRecord: uint64 length (LE), uint32 masked crc32c(length bytes), data, uint32 masked crc32c(data).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::tfevents {

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses.
uint32_t crc32c(std::string_view data);
/// TFRecord's masking, which keeps a CRC of data that itself contains CRCs from looking degenerate.
uint32_t masked_crc32c(std::string_view data);

/// One TFRecord: length, its CRC, the data, the data's CRC.
std::string frame_record(std::string_view data);

/// Protobuf wire-format encoding of the few field types the Event messages use.
class ProtoWriter {
 public:
  void varint_field(int field, uint64_t value);
  void double_field(int field, double value);
  void float_field(int field, float value);
  void bytes_field(int field, std::string_view bytes);
  const std::string& bytes() const { return out_; }

 private:
  void varint(uint64_t value);
  void key(int field, int wire_type);
  std::string out_;
};

struct Scalar {
  std::string tag;
  float value = 0.0f;
};

/// The first event of every file: which format version follows ("brain.Event:2").
std::string file_version_event(double wall_time, std::string_view version);
/// An event holding one Summary with a simple_value per scalar.
std::string scalars_event(double wall_time, int64_t step, const std::vector<Scalar>& scalars);

}  // namespace loom::tfevents
