#include "common/model/torch_file.h"

#include <loom/io.h>

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <memory>
#include <tuple>
#include <stdexcept>
#include <vector>

namespace loom::model_common {
namespace {

// One unpickled Python object; shared so that the memo and the stack alias the same dict, as in Python.
struct PyObject;
using Obj = std::shared_ptr<PyObject>;
struct PyObject {
  enum class Kind { None, Bool, Int, Float, Str, Tuple, Dict, Global, Tensor } kind = Kind::None;
  int64_t i = 0;
  double f = 0;
  std::string s;                             // Str; Global: "module.name"
  std::vector<Obj> items;                    // Tuple (also lists)
  std::vector<std::pair<Obj, Obj>> entries;  // Dict, in insertion order
  at::Tensor tensor;                         // Tensor; also a storage (1-D) before _rebuild_tensor_v2
};

Obj make(PyObject::Kind kind) {
  auto o = std::make_shared<PyObject>();
  o->kind = kind;
  return o;
}

std::string describe(const Obj& o) {
  switch (o->kind) {
    case PyObject::Kind::None: return "None";
    case PyObject::Kind::Bool: return "bool";
    case PyObject::Kind::Int: return "int";
    case PyObject::Kind::Float: return "float";
    case PyObject::Kind::Str: return "str";
    case PyObject::Kind::Tuple: return "tuple/list";
    case PyObject::Kind::Dict: return "dict";
    case PyObject::Kind::Global: return o->s;
    case PyObject::Kind::Tensor: return "tensor";
  }
  return "?";
}

c10::ScalarType storage_dtype(const std::string& global) {
  static const std::map<std::string, c10::ScalarType> kTypes = {
      {"torch.FloatStorage", c10::kFloat},   {"torch.DoubleStorage", c10::kDouble},
      {"torch.HalfStorage", c10::kHalf},     {"torch.BFloat16Storage", c10::kBFloat16},
      {"torch.LongStorage", c10::kLong},     {"torch.IntStorage", c10::kInt},
      {"torch.ShortStorage", c10::kShort},   {"torch.CharStorage", c10::kChar},
      {"torch.ByteStorage", c10::kByte},     {"torch.BoolStorage", c10::kBool}};
  auto it = kTypes.find(global);
  if (it == kTypes.end()) throw std::invalid_argument("holds a storage of unsupported type " + global);
  return it->second;
}

class Unpickler {
 public:
  Unpickler(const char* data, size_t size, caffe2::serialize::PyTorchStreamReader& archive)
      : p_(data), end_(data + size), archive_(archive) {}

  Obj run() {
    while (true) {
      const auto op = static_cast<unsigned char>(byte());
      switch (op) {
        case 0x80: byte(); break;                                      // PROTO
        case '.': return pop();                                        // STOP
        case '(': marks_.push_back(stack_.size()); break;              // MARK
        case 'N': stack_.push_back(make(PyObject::Kind::None)); break;
        case 0x88: case 0x89: push_int(op == 0x88, PyObject::Kind::Bool); break;  // NEWTRUE/NEWFALSE
        case 'K': push_int(static_cast<unsigned char>(byte()), PyObject::Kind::Int); break;  // BININT1
        case 'M': push_int(static_cast<int64_t>(little(2)), PyObject::Kind::Int); break;      // BININT2
        case 'J': push_int(static_cast<int32_t>(little(4)), PyObject::Kind::Int); break;      // BININT
        case 0x8a: long1(); break;                                                          // LONG1
        case 'G': binfloat(); break;                                                        // BINFLOAT
        case 'X': push_str(little(4)); break;                                               // BINUNICODE
        case 0x8c: push_str(static_cast<unsigned char>(byte())); break;                     // SHORT_BINUNICODE
        case 'c': global(); break;                                                          // GLOBAL
        case 'q': memo_[little(1)] = top(); break;                                          // BINPUT
        case 'r': memo_[little(4)] = top(); break;                                          // LONG_BINPUT
        case 'h': stack_.push_back(memo(little(1))); break;                                 // BINGET
        case 'j': stack_.push_back(memo(little(4))); break;                                 // LONG_BINGET
        case ')': stack_.push_back(make(PyObject::Kind::Tuple)); break;                     // EMPTY_TUPLE
        case ']': stack_.push_back(make(PyObject::Kind::Tuple)); break;                     // EMPTY_LIST
        case '}': stack_.push_back(make(PyObject::Kind::Dict)); break;                      // EMPTY_DICT
        case 't': case 'e': tuple_from_mark(op == 'e'); break;                              // TUPLE, APPENDS
        case 0x85: case 0x86: case 0x87: tuple_n(op - 0x84); break;                         // TUPLE1..3
        case 'a': { Obj v = pop(); top()->items.push_back(v); break; }                      // APPEND
        case 's': { Obj v = pop(), k = pop(); dict_top()->entries.emplace_back(k, v); break; }  // SETITEM
        case 'u': setitems(); break;                                                        // SETITEMS
        case 'R': reduce(); break;                                                          // REDUCE
        case 'Q': persistent_load(); break;                                                 // BINPERSID
        case 'b': pop(); break;  // BUILD: only OrderedDict's _metadata (state_dict versions) comes here
        case 0x81:                 // NEWOBJ
          throw std::invalid_argument("holds a pickled Python object, not only a dict of tensors (was a whole "
                                      "module saved with torch.save(model)?)");
        default:
          throw std::invalid_argument("uses pickle opcode 0x" + hex(op) +
                                      ", which a torch.save of a dict of tensors does not");
      }
    }
  }

 private:
  char byte() {
    if (p_ >= end_) throw std::invalid_argument("has a truncated data.pkl");
    return *p_++;
  }
  uint64_t little(int n) {
    uint64_t v = 0;
    for (int b = 0; b < n; ++b) v |= static_cast<uint64_t>(static_cast<unsigned char>(byte())) << (8 * b);
    return v;
  }
  static std::string hex(unsigned v) {
    const char* digits = "0123456789abcdef";
    return {digits[(v >> 4) & 15], digits[v & 15]};
  }
  Obj pop() {
    if (stack_.empty()) throw std::invalid_argument("has a malformed data.pkl (stack underflow)");
    Obj o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Obj& top() {
    if (stack_.empty()) throw std::invalid_argument("has a malformed data.pkl (empty stack)");
    return stack_.back();
  }
  Obj dict_top() {
    if (top()->kind != PyObject::Kind::Dict) throw std::invalid_argument("sets an item on a " + describe(top()));
    return top();
  }
  Obj memo(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) throw std::invalid_argument("has a malformed data.pkl (unknown memo entry)");
    return it->second;
  }
  std::string line() {
    std::string out;
    for (char c = byte(); c != '\n'; c = byte()) out += c;
    return out;
  }
  void push_int(int64_t v, PyObject::Kind kind) {
    Obj o = make(kind);
    o->i = v;
    stack_.push_back(o);
  }
  void long1() {
    const int n = static_cast<unsigned char>(byte());
    if (n > 8) throw std::invalid_argument("holds an integer wider than 64 bits");
    uint64_t v = little(n);
    if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    push_int(static_cast<int64_t>(v), PyObject::Kind::Int);
  }
  void binfloat() {
    uint64_t bits = 0;
    for (int b = 0; b < 8; ++b) bits = (bits << 8) | static_cast<unsigned char>(byte());  // big-endian
    Obj o = make(PyObject::Kind::Float);
    std::memcpy(&o->f, &bits, sizeof bits);
    stack_.push_back(o);
  }
  void push_str(uint64_t n) {
    if (static_cast<uint64_t>(end_ - p_) < n) throw std::invalid_argument("has a truncated data.pkl");
    Obj o = make(PyObject::Kind::Str);
    o->s.assign(p_, n);
    p_ += n;
    stack_.push_back(o);
  }
  void global() {
    Obj o = make(PyObject::Kind::Global);
    o->s = line();
    o->s += "." + line();
    stack_.push_back(o);
  }
  std::vector<Obj> pop_to_mark() {
    if (marks_.empty()) throw std::invalid_argument("has a malformed data.pkl (no mark)");
    std::vector<Obj> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  void tuple_from_mark(bool append_to_list) {
    std::vector<Obj> items = pop_to_mark();
    if (append_to_list) {
      auto& list = top()->items;
      list.insert(list.end(), items.begin(), items.end());
      return;
    }
    Obj t = make(PyObject::Kind::Tuple);
    t->items = std::move(items);
    stack_.push_back(t);
  }
  void tuple_n(int n) {
    Obj t = make(PyObject::Kind::Tuple);
    t->items.resize(static_cast<size_t>(n));
    for (int k = n - 1; k >= 0; --k) t->items[static_cast<size_t>(k)] = pop();
    stack_.push_back(t);
  }
  void setitems() {
    std::vector<Obj> items = pop_to_mark();
    Obj dict = dict_top();
    for (size_t k = 0; k + 1 < items.size(); k += 2) dict->entries.emplace_back(items[k], items[k + 1]);
  }
  static int64_t int_of(const Obj& o) {
    if (o->kind != PyObject::Kind::Int) throw std::invalid_argument("has a tensor with a non-integer size");
    return o->i;
  }
  static std::vector<int64_t> ints_of(const Obj& o) {
    std::vector<int64_t> out;
    for (const Obj& item : o->items) out.push_back(int_of(item));
    return out;
  }
  void reduce() {
    Obj args = pop(), callable = pop();
    const std::string& name = callable->s;
    if (callable->kind == PyObject::Kind::Global && name == "collections.OrderedDict") {
      stack_.push_back(make(PyObject::Kind::Dict));
    } else if (callable->kind == PyObject::Kind::Global && name == "torch._utils._rebuild_tensor_v2" &&
               args->items.size() >= 4 && args->items[0]->kind == PyObject::Kind::Tensor) {
      Obj t = make(PyObject::Kind::Tensor);
      t->tensor = args->items[0]->tensor.as_strided(ints_of(args->items[2]), ints_of(args->items[3]),
                                                    int_of(args->items[1]));
      stack_.push_back(t);
    } else if (callable->kind == PyObject::Kind::Global && name == "torch._utils._rebuild_parameter" &&
               !args->items.empty()) {
      stack_.push_back(args->items[0]);  // a Parameter saved as such: its data
    } else {
      throw std::invalid_argument("holds a " + describe(callable) +
                                  " object, not only a dict of tensors (was a whole module or a training "
                                  "checkpoint saved?)");
    }
  }
  // ('storage', torch.FloatStorage, key, location, numel): the bytes are the archive's data/<key>.
  void persistent_load() {
    Obj pid = pop();
    if (pid->kind != PyObject::Kind::Tuple || pid->items.size() < 5 || pid->items[0]->s != "storage")
      throw std::invalid_argument("holds a persistent object that is not a tensor storage");
    const c10::ScalarType dtype = storage_dtype(pid->items[1]->s);
    const std::string record = "data/" + pid->items[2]->s;
    Obj storage = make(PyObject::Kind::Tensor);
    storage->tensor = at::empty({int_of(pid->items[4])}, at::TensorOptions().dtype(dtype));
    const size_t bytes = storage->tensor.nbytes();
    if (archive_.getRecordSize(record) != bytes)
      throw std::invalid_argument("has a storage record " + record + " of the wrong size");
    archive_.getRecord(record, storage->tensor.data_ptr(), bytes);
    stack_.push_back(storage);
  }

  const char* p_;
  const char* end_;
  caffe2::serialize::PyTorchStreamReader& archive_;
  std::vector<Obj> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, Obj> memo_;
};

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

std::map<std::string, at::Tensor> read_tensor_dict(const std::filesystem::path& file, const std::string& where) {
  // LibTorch's reader opens the file itself: check first that it is a regular file (a FIFO or a symlink to
  // /dev/zero is refused at once, instead of a read that never ends).
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::symlink_status(file, ec)))
    throw std::invalid_argument(where + " cannot be opened (does it exist?)");
  try {
    io::check_regular_file(file, io::kNoLimit, "weights file");
  } catch (const io::Error& e) {
    throw std::invalid_argument(where + " cannot be read: " + e.what());
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
  std::tuple<at::DataPtr, size_t> pickle;
  try {
    archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(file.string());
    pickle = archive->getRecord("data.pkl");
  } catch (const c10::Error& e) {
    // LibTorch's message (e.g. "failed finding central directory") without its C++ backtrace.
    throw std::invalid_argument(where + " is not a zip archive written by torch.save (" +
                                trimmed(e.what_without_backtrace()) + ")");
  }
  Obj root;
  try {
    root = Unpickler(static_cast<const char*>(std::get<0>(pickle).get()), std::get<1>(pickle), *archive).run();
  } catch (const c10::Error& e) {
    throw std::invalid_argument(where + " is malformed (" + trimmed(e.what_without_backtrace()) + ")");
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + " " + e.what());
  }
  if (root->kind != PyObject::Kind::Dict) throw std::invalid_argument(where + " holds a " + describe(root) + ", not a dict");
  std::map<std::string, at::Tensor> out;
  for (const auto& [key, value] : root->entries) {
    if (key->kind != PyObject::Kind::Str) throw std::invalid_argument(where + " has a " + describe(key) + " key, not a str");
    if (value->kind != PyObject::Kind::Tensor)
      throw std::invalid_argument(where + ": '" + key->s + "' is a " + describe(value) + ", not a tensor");
    out[key->s] = value->tensor;
  }
  return out;
}

}  // namespace loom::model_common
