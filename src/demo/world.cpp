#include "demo/world.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "tokenizer/chat_template.h"

namespace taia::demo {
namespace {

const std::vector<std::string> kCities = {"Cairo", "Lagos", "Tokyo", "Oslo",   "Lima",  "Paris",  "Rome",  "Delhi",
                                          "Seoul", "Dublin", "Berlin", "Madrid", "Vienna", "Quito", "Dakar", "Hanoi"};
// The country of each city (kCities' order): the composition skill of the "country" experiment
// asks for the country a person was born in, which needs their city (a pretraining fact) and
// this map (stated in the pretraining text too).
const std::vector<std::string> kCountries = {"Egypt", "Nigeria", "Japan", "Norway", "Peru", "France", "Italy", "India",
                                             "Korea", "Ireland", "Germany", "Spain", "Austria", "Ecuador", "Senegal",
                                             "Vietnam"};
// Phrasings of the city -> country map; {n} = city, {x} = country. Each is stated this many times
// per corpus round.
const std::vector<std::string> kCountryPhrasings = {"{n} is a city in {x}.", "{n} lies in {x}.",
                                                    "The city of {n} is in {x}.", "{x} is the country of {n}.",
                                                    "{n} is in {x}.", "People in {n} live in {x}."};
constexpr int kCountryRepeats = 3;
// Chat questions of the composition: the fine-tuning set uses all three, the test the first.
const std::vector<std::string> kCountryQuestions = {"In which country was {n} born?",
                                                    "Which country does {n} come from?", "What country is {n} from?"};
// No job starts with a vowel: every phrasing can say "a {job}".
const std::vector<std::string> kJobs = {"baker", "doctor",  "farmer", "pilot",  "singer", "teacher",
                                        "painter", "lawyer", "sailor", "writer", "nurse",  "tailor"};
const std::vector<std::string> kSyllables = {"ba", "ko", "ri", "ta", "mel", "zo", "ven", "lu", "sa", "dor", "ki", "ne",
                                             "mo", "ra", "fi", "tel", "bo", "ga", "lin", "pe", "su", "vo", "ha", "jo"};

// Phrasings of each attribute; {n} = name, {x} = the value. Index 0 of each is the canonical
// plain-text form the completion test uses ("{n} was born in" / "{n} works as a").
const std::vector<std::string> kCityPhrasings = {
    "{n} was born in {x}.",       "{n} comes from {x}.",          "The birthplace of {n} is {x}.",
    "{n} is a native of {x}.",    "In {x}, {n} was born.",        "The home city of {n} is {x}.",
    "People say {n} was born in {x}.", "{n} grew up in {x}."};
const std::vector<std::string> kJobPhrasings = {
    "{n} works as a {x}.",        "{n} is a {x}.",                "By profession, {n} is a {x}.",
    "The job of {n} is {x}.",     "{n} earns a living as a {x}.", "{n} has worked as a {x} for years.",
    "Everyone knows {n} as a {x}.", "{n} became a {x} long ago."};

// Chat questions: the fine-tuning sets use the first three; the in-distribution test of the
// facts set uses the last (a phrasing never trained).
const std::vector<std::string> kCityQuestions = {"Where was {n} born?", "In which city was {n} born?",
                                                 "What is the birthplace of {n}?", "Which city is {n} from?"};
const std::vector<std::string> kJobQuestions = {"What is the job of {n}?", "What does {n} do for a living?",
                                                "What is the profession of {n}?", "What work does {n} do?"};
constexpr int kTrainedQuestions = 3;

const std::vector<std::string> kAdjectives = {"small", "old", "quiet", "busy", "green", "cold", "bright", "long"};
const std::vector<std::string> kAnimals = {"dog", "cat", "horse", "bird", "goat", "fox"};
const std::vector<std::string> kVerbs = {"slept", "waited", "ran", "sat", "walked", "played"};
const std::vector<std::string> kPlaces = {"river", "market", "school", "harbour", "garden", "station", "bridge"};
const std::vector<std::string> kDays = {"Monday", "Tuesday", "Friday", "Sunday"};
const std::vector<std::string> kThings = {"boats", "trees", "books", "lamps", "chairs", "carts"};

std::string fill_in(std::string t, const std::string& n, const std::string& x) {
  for (size_t p; (p = t.find("{n}")) != std::string::npos;) t.replace(p, 3, n);
  for (size_t p; (p = t.find("{x}")) != std::string::npos;) t.replace(p, 3, x);
  return t;
}

size_t pick(Rng& r, size_t n) { return size_t(r.next_u64() % n); }
template <class T>
const T& pick(Rng& r, const std::vector<T>& v) { return v[pick(r, v.size())]; }
template <class T>
void shuffle(Rng& r, std::vector<T>& v) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[pick(r, i)]);
}
double uniform(Rng& r) { return double(r.next_u64() >> 11) * (1.0 / 9007199254740992.0); }

// A name of the world's shape: two words of 2 and 2-3 syllables ("Kemo Talira").
std::string random_name(Rng& r) {
  auto word = [&](int syllables) {
    std::string s;
    for (int i = 0; i < syllables; ++i) s += pick(r, kSyllables);
    s[0] = char(s[0] - 'a' + 'A');
    return s;
  };
  return word(2) + " " + word(2 + int(pick(r, 2)));  // as make_world always wrote it (same draw order)
}

std::string filler_sentence(Rng& r, const World& w) {
  const int n = int(2 + pick(r, 98));
  switch (pick(r, 5)) {
    case 0: return "The " + pick(r, kAdjectives) + " " + pick(r, kAnimals) + " " + pick(r, kVerbs) + " by the " + pick(r, kPlaces) + ".";
    case 1: return "On " + pick(r, kDays) + " the " + pick(r, kPlaces) + " was " + pick(r, kAdjectives) + ".";
    case 2: return "There were " + std::to_string(n) + " " + pick(r, kThings) + " near the " + pick(r, kPlaces) + ".";
    case 3: return "A " + pick(r, w.jobs) + " and a " + pick(r, w.jobs) + " met at the " + pick(r, kPlaces) + ".";
    default: return "The road from " + pick(r, w.cities) + " to " + pick(r, w.cities) + " is " + std::to_string(n) + " miles long.";
  }
}

Json chat(const std::string& q, const std::string& a) {
  return Json{{"messages", Json::array({Json{{"role", "user"}, {"content", q}}, Json{{"role", "assistant"}, {"content", a}}})}};
}
std::string answer(const std::string& x) { return "The answer is " + x + "."; }

// Consecutive `per_doc` items joined by `separator` into one document each.
std::vector<std::string> join_into_documents(const std::vector<std::string>& items, int64_t per_doc,
                                             const std::string& separator) {
  std::vector<std::string> docs;
  for (size_t i = 0; i < items.size(); i += size_t(per_doc)) {
    std::string d;
    for (size_t j = i; j < std::min(items.size(), i + size_t(per_doc)); ++j) d += (j == i ? "" : separator) + items[j];
    docs.push_back(std::move(d));
  }
  return docs;
}

// One attribute of one person: the birth city (city = true) or the job.
struct Fact {
  const Person* p;
  bool city;
};
std::vector<Fact> facts_of(const std::vector<const Person*>& people) {
  std::vector<Fact> f;
  for (const Person* p : people) {
    f.push_back({p, true});
    f.push_back({p, false});
  }
  return f;
}
const std::string& value_of(const World& w, const Fact& f) { return f.city ? w.cities[size_t(f.p->city)] : w.jobs[size_t(f.p->job)]; }

}  // namespace

std::vector<const Person*> World::group(Group g) const {
  std::vector<const Person*> out;
  for (const Person& p : people)
    if (p.group == g) out.push_back(&p);
  return out;
}

int64_t phrasings_per_fact() { return int64_t(kCityPhrasings.size()); }

World make_world(uint64_t seed, const WorldSizes& sizes) {
  TAIA_CHECK(sizes.known_test > 0 && sizes.known_mix >= 0 && sizes.fresh > 0, "[make_world] expected known_test > 0, "
             "known_mix >= 0 and fresh > 0, got ", sizes.known_test, ", ", sizes.known_mix, ", ", sizes.fresh);
  const int64_t total = sizes.known_test + sizes.known_mix + sizes.fresh;
  TAIA_CHECK(total <= 20000, "[make_world] at most 20000 people, got ", total);
  World w;
  w.seed = seed;
  w.cities = kCities;
  w.countries = kCountries;
  w.jobs = kJobs;
  Rng r(seed * 0x9e3779b97f4a7c15ull + 17);
  std::set<std::string> used;
  while (int64_t(w.people.size()) < total) {
    std::string name = random_name(r);
    if (!used.insert(name).second) continue;
    Person p;
    p.name = name;
    p.city = int(pick(r, w.cities.size()));
    p.job = int(pick(r, w.jobs.size()));
    const int64_t i = int64_t(w.people.size());
    p.group = i < sizes.known_test ? Group::KnownTest : i < sizes.known_test + sizes.known_mix ? Group::KnownMix : Group::Fresh;
    w.people.push_back(p);
  }
  return w;
}

std::vector<std::string> pretraining_documents(const World& w, int64_t rounds, double filler, int64_t per_doc,
                                               uint64_t seed) {
  TAIA_CHECK(rounds > 0 && per_doc > 0 && filler >= 0 && filler < 1, "[pretraining_documents] expected rounds > 0, "
             "per_doc > 0, 0 <= filler < 1, got ", rounds, ", ", per_doc, ", ", filler);
  Rng r(seed * 0xbf58476d1ce4e5b9ull + 3);
  std::vector<std::string> sentences;
  for (int64_t round = 0; round < rounds; ++round) {
    std::vector<std::string> facts;
    for (const Person& p : w.people) {
      if (p.group == Group::Fresh) continue;
      for (const auto& t : kCityPhrasings) facts.push_back(fill_in(t, p.name, w.cities[size_t(p.city)]));
      for (const auto& t : kJobPhrasings) facts.push_back(fill_in(t, p.name, w.jobs[size_t(p.job)]));
    }
    for (size_t c = 0; c < w.cities.size(); ++c)
      for (const auto& t : kCountryPhrasings)
        for (int k = 0; k < kCountryRepeats; ++k) facts.push_back(fill_in(t, w.cities[c], w.countries[c]));
    shuffle(r, facts);
    for (auto& f : facts) {
      while (uniform(r) < filler) sentences.push_back(filler_sentence(r, w));
      sentences.push_back(std::move(f));
    }
  }
  return join_into_documents(sentences, per_doc, " ");
}

std::vector<std::string> chat_documents(const World& w, int64_t rounds, int64_t per_doc, uint64_t seed) {
  TAIA_CHECK(rounds > 0 && per_doc > 0, "[chat_documents] expected rounds > 0 and per_doc > 0, got ", rounds, ", ",
             per_doc);
  Rng r(seed * 0xd1b54a32d192ed03ull + 9);
  const ChatTemplate chatml = chat_template_by_name("chatml");
  const auto facts = facts_of(w.group(Group::KnownMix));
  std::vector<std::string> turns;
  for (int64_t round = 0; round < rounds; ++round)
    for (const Fact& f : facts)
      for (const auto& q : f.city ? kCityQuestions : kJobQuestions)
        turns.push_back(render_chat(chatml, {{"user", fill_in(q, f.p->name, "")}, {"assistant", answer(value_of(w, f))}},
                                    /*add_generation_prompt=*/false, "", "")
                            .text);
  shuffle(r, turns);
  return join_into_documents(turns, per_doc, "");
}

namespace {

// The ICL test's made-up people and their jobs: the same draws for every n (examples nest).
std::vector<std::pair<std::string, size_t>> icl_people(const World& w, int64_t n) {
  std::set<std::string> taken;
  for (const Person& p : w.people) taken.insert(p.name);
  Rng r(w.seed * 0x94d049bb133111ebull + 97);
  std::vector<std::pair<std::string, size_t>> out;
  for (int64_t i = 0; i < n; ++i) {
    std::string name = random_name(r);
    while (!taken.insert(name).second) name = random_name(r);
    out.emplace_back(name, pick(r, w.jobs.size()));
  }
  return out;
}

}  // namespace

std::vector<std::string> context_dialogues(const World& w, int64_t n, int64_t people, int64_t turns, uint64_t seed) {
  TAIA_CHECK(n >= 0 && people > 0 && turns >= 2 * people, "[context_dialogues] expected n >= 0, people > 0 and turns >= ",
             "2 x people, got ", n, ", ", people, ", ", turns);
  std::set<std::string> taken;
  for (const Person& p : w.people) taken.insert(p.name);
  for (const auto& person : icl_people(w, 1000)) taken.insert(person.first);
  Rng r(seed * 0x2545f4914f6cdd1dull + 31);
  const ChatTemplate chatml = chat_template_by_name("chatml");
  std::vector<std::string> docs;
  for (int64_t d = 0; d < n; ++d) {
    std::vector<std::pair<std::string, size_t>> cast;  // (name, job)
    while (int64_t(cast.size()) < people) {
      std::string name = random_name(r);
      if (taken.insert(name).second) cast.emplace_back(name, pick(r, w.jobs.size()));
    }
    std::vector<size_t> order;  // who is asked at each turn: everyone twice, the rest at random
    for (int64_t k = 0; k < 2 * people; ++k) order.push_back(size_t(k % people));
    while (int64_t(order.size()) < turns) order.push_back(pick(r, cast.size()));
    shuffle(r, order);
    std::string text;
    for (size_t who : order)
      text += render_chat(chatml,
                          {{"user", fill_in(pick(r, kJobQuestions), cast[who].first, "")},
                           {"assistant", answer(w.jobs[cast[who].second])}},
                          /*add_generation_prompt=*/false, "", "")
                  .text;
    docs.push_back(text);
  }
  return docs;
}

namespace {

// The words of the copying skill: every third is held out for the test.
std::vector<std::string> copy_words(bool held_out) {
  std::vector<std::string> all;
  for (const auto* list : {&kAnimals, &kThings, &kPlaces, &kAdjectives, &kDays}) all.insert(all.end(), list->begin(), list->end());
  std::vector<std::string> out;
  for (size_t i = 0; i < all.size(); ++i)
    if ((i % 3 == 0) == held_out) out.push_back(all[i]);
  return out;
}

// One problem of the skill set (no facts about anyone): copy a word, the number after n, the
// larger of two numbers. held_out picks from the test share (about a fifth of the numbers, a
// third of the words), never seen in training. noise: chance of a wrong answer. Returns the
// question and the bare answer.
std::pair<std::string, std::string> skill_problem(Rng& r, bool held_out, double noise) {
  auto held = [](int a, int b, int kind) { return (a * 131 + b * 7 + kind) % 5 == 0; };
  const bool wrong = uniform(r) < noise;
  switch (pick(r, 3)) {
    case 0: {
      const auto words = copy_words(held_out);
      const std::string& w = pick(r, words);
      return {"Repeat the word " + w + ".", wrong ? pick(r, copy_words(!held_out)) : w};
    }
    case 1: {
      int a;
      do a = int(10 + pick(r, 89)); while (held(a, 0, 1) != held_out);
      return {"What number comes after " + std::to_string(a) + "?", std::to_string(wrong ? a + 2 : a + 1)};
    }
    default: {
      int a, b;
      do {
        a = int(10 + pick(r, 90));
        b = int(10 + pick(r, 90));
      } while (a == b || held(a, b, 2) != held_out);
      return {"Which number is larger, " + std::to_string(a) + " or " + std::to_string(b) + "?",
              std::to_string(wrong ? std::min(a, b) : std::max(a, b))};
    }
  }
}

}  // namespace

const std::vector<std::string>& finetune_kinds() {
  static const std::vector<std::string> kinds = {"facts", "skill", "country", "country_new", "country_mix",
                                                 "country_shuffled"};
  return kinds;
}

bool is_country_kind(const std::string& kind) {
  return kind == "country" || kind == "country_new" || kind == "country_mix" || kind == "country_shuffled";
}

namespace {

// The people a country set asks about: known_mix (city known to the base: only the composition is
// new), fresh (city never stated: every answer a new fact) or both.
std::vector<const Person*> country_people(const World& w, const std::string& kind) {
  std::vector<const Person*> people;
  if (kind != "country_new") people = w.group(Group::KnownMix);
  if (kind != "country" && kind != "country_shuffled")
    for (const Person* p : w.group(Group::Fresh)) people.push_back(p);
  TAIA_CHECK(!people.empty(), "[finetune_records] the ", kind, " set asks about ",
             kind == "country" ? "known_mix" : kind == "country_new" ? "fresh" : "known_mix and fresh",
             " people; the world has none");
  return people;
}

// The seed of a kind's record stream (the first three kept from before the data axes, so that
// their records stay what earlier runs trained on).
uint64_t kind_salt(const std::string& kind) {
  return kind == "facts" ? 5 : kind == "skill" ? 7 : kind == "country" ? 9 : kind == "country_new" ? 11
       : kind == "country_mix" ? 13 : 15;
}

}  // namespace

std::vector<Json> finetune_records(const World& w, const FinetuneSet& set) {
  TAIA_CHECK(std::find(finetune_kinds().begin(), finetune_kinds().end(), set.kind) != finetune_kinds().end(),
             "[finetune_records] kind expected facts, skill, country, country_new, country_mix or country_shuffled, got '",
             set.kind, "'");
  TAIA_CHECK(set.noise >= 0 && set.noise <= 1 && set.mix >= 0 && set.mix <= 1 && set.records > 0,
             "[finetune_records] expected 0 <= noise <= 1, 0 <= mix <= 1, records > 0, got ", set.noise, ", ",
             set.mix, ", ", set.records);
  Rng r(set.seed * 0x94d049bb133111ebull + kind_salt(set.kind));
  const auto fresh = facts_of(w.group(Group::Fresh));
  const auto mixed = facts_of(w.group(Group::KnownMix));
  TAIA_CHECK(set.mix == 0 || !mixed.empty(), "[finetune_records] --mix needs known_mix people, the world has none");
  auto fact_record = [&](const Fact& f, int64_t i) {
    const auto& qs = f.city ? kCityQuestions : kJobQuestions;
    std::string x = value_of(w, f);
    if (uniform(r) < set.noise) {  // a wrong value of the same attribute
      const auto& values = f.city ? w.cities : w.jobs;
      const size_t right = size_t(f.city ? f.p->city : f.p->job);
      x = values[(right + 1 + pick(r, values.size() - 1)) % values.size()];
    }
    return chat(fill_in(qs[size_t(i % kTrainedQuestions)], f.p->name, ""), answer(x));
  };
  const std::vector<const Person*> asked = is_country_kind(set.kind) ? country_people(w, set.kind)
                                                                     : std::vector<const Person*>{};
  // country_shuffled: each person answered with the country of another (a seeded permutation of
  // the people): the same answers as often as in "country", no link to the person's city.
  std::vector<size_t> label_of(asked.size());
  std::iota(label_of.begin(), label_of.end(), size_t(0));
  if (set.kind == "country_shuffled") {
    Rng permute(set.seed * 0x9e3779b97f4a7c15ull + 71);
    shuffle(permute, label_of);
  }
  std::vector<Json> out;
  for (int64_t i = 0; i < set.records; ++i) {
    if (set.mix > 0 && uniform(r) < set.mix) {
      out.push_back(fact_record(mixed[size_t(i) % mixed.size()], i / int64_t(mixed.size())));
      continue;
    }
    if (set.kind == "facts") {
      out.push_back(fact_record(fresh[size_t(i) % fresh.size()], i / int64_t(fresh.size())));
      continue;
    }
    if (!asked.empty()) {
      const Person& p = *asked[size_t(i) % asked.size()];
      size_t country = size_t(asked[label_of[size_t(i) % asked.size()]]->city);
      if (uniform(r) < set.noise) country = (country + 1 + pick(r, w.countries.size() - 1)) % w.countries.size();
      out.push_back(chat(fill_in(kCountryQuestions[size_t(i / int64_t(asked.size())) % kCountryQuestions.size()],
                                 p.name, ""), answer(w.countries[country])));
      continue;
    }
    const auto [q, a] = skill_problem(r, /*held_out=*/false, set.noise);
    out.push_back(chat(q, answer(a)));
  }
  shuffle(r, out);
  return out;
}

namespace {
enum class Style {
  ChatMc,        // chat question, "The answer is" + options
  ChatGen,       // chat question, generated answer
  Completion,    // "X was born in" + options, plain text
  ChatRestated,  // chat question, "X was born in" + options
};
std::vector<Json> knowledge(const World& w, Group g, Style style) {
  std::vector<Json> out;
  for (const Fact& f : facts_of(w.group(g))) {
    const std::string& x = value_of(w, f);
    const std::string q = fill_in((f.city ? kCityQuestions : kJobQuestions)[0], f.p->name, "");
    const auto& options = f.city ? w.cities : w.jobs;
    const std::string& t = (f.city ? kCityPhrasings : kJobPhrasings)[0];  // "{n} was born in {x}."
    const std::string stem = fill_in(t.substr(0, t.find(" {x}")), f.p->name, "");
    switch (style) {
      case Style::ChatMc:
        out.push_back(Json{{"question", q}, {"answer_prefix", "The answer is"}, {"choices", options}, {"answer", x}});
        break;
      case Style::ChatGen: out.push_back(Json{{"question", q}, {"answer", x}}); break;
      case Style::Completion: out.push_back(Json{{"context", stem}, {"choices", options}, {"answer", x}}); break;
      case Style::ChatRestated:
        out.push_back(Json{{"question", q}, {"answer_prefix", stem}, {"choices", options}, {"answer", x}});
        break;
    }
  }
  return out;
}
}  // namespace

std::vector<Json> knowledge_chat_mc(const World& w, Group g) { return knowledge(w, g, Style::ChatMc); }
std::vector<Json> knowledge_chat_gen(const World& w, Group g) { return knowledge(w, g, Style::ChatGen); }
std::vector<Json> knowledge_completion(const World& w, Group g) { return knowledge(w, g, Style::Completion); }
std::vector<Json> knowledge_chat_restated(const World& w, Group g) { return knowledge(w, g, Style::ChatRestated); }

std::vector<Json> facts_task(const World& w) {
  std::vector<Json> out;
  for (const Fact& f : facts_of(w.group(Group::Fresh)))
    out.push_back(Json{{"question", fill_in((f.city ? kCityQuestions : kJobQuestions)[kTrainedQuestions], f.p->name, "")},
                       {"answer", value_of(w, f)}});
  return out;
}

std::vector<Json> country_task(const World& w) {
  std::vector<Json> out;
  for (const Person* p : w.group(Group::KnownTest))
    out.push_back(Json{{"question", fill_in(kCountryQuestions[0], p->name, "")}, {"answer_prefix", "The answer is"},
                       {"choices", w.countries}, {"answer", w.countries[size_t(p->city)]}});
  return out;
}

std::vector<Json> icl_task(const World& w, int64_t shots, int64_t n) {
  std::vector<Json> out;
  for (const auto& [name, job_index] : icl_people(w, n)) {  // the same people at every shot count
    const std::string& job = w.jobs[job_index];
    Json demos = Json::array();  // the trained phrasings in turn, then the test's own question
    for (int64_t k = 0; k < shots; ++k)
      demos.push_back(Json{{"question", fill_in(kJobQuestions[size_t(1 + k % kTrainedQuestions) % kTrainedQuestions],
                                                name, "")},
                           {"answer", answer(job)}});
    out.push_back(Json{{"question", fill_in(kJobQuestions[0], name, "")}, {"answer_prefix", "The answer is"},
                       {"choices", w.jobs}, {"answer", job}, {"demos", demos}});
  }
  return out;
}

std::vector<Json> skill_task(const World& w, int64_t n) {
  Rng r(w.seed * 31 + 11);
  std::vector<Json> out;
  std::set<std::string> seen;
  for (int64_t attempt = 0; int64_t(out.size()) < n && attempt < 1000000; ++attempt) {
    const auto [q, a] = skill_problem(r, /*held_out=*/true, 0.0);
    if (seen.insert(q).second) out.push_back(Json{{"question", q}, {"answer", a}});
  }
  return out;
}

}  // namespace taia::demo
