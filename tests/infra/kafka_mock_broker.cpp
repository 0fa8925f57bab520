// A Kafka broker for tests: librdkafka's mock cluster, reachable over TCP from other processes.
//   kafka_mock_broker BOOTSTRAP_FILE [BROKERS]
// Creates BROKERS (default 3) brokers and the topics Credo publishes to, writes the bootstrap
// string to BOOTSTRAP_FILE (atomically, via a temporary file) and runs until SIGTERM/SIGINT.
// A Kafka outage without changing addresses: SIGUSR1 takes every broker down (connections are
// closed and refused), SIGUSR2 brings every broker up again on the same ports.
// librdkafka marks the mock API experimental; it stands in for Kafka only in tests (the compose
// stack uses Redpanda).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: kafka_mock_broker BOOTSTRAP_FILE [BROKERS]\n");
    return 2;
  }
  int brokers = argc > 2 ? std::atoi(argv[2]) : 3;
  if (brokers < 1 || brokers > 9) {
    std::fprintf(stderr, "kafka_mock_broker: BROKERS must be 1..9\n");
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    std::fprintf(stderr, "kafka_mock_broker: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    std::fprintf(stderr, "kafka_mock_broker: cannot create the mock cluster\n");
    return 1;
  }
  int replicas = brokers >= 3 ? 3 : brokers;
  for (const char* topic : {"credo.audit.events", "credo.consent.events"})
    if (rd_kafka_mock_topic_create(mc, topic, 3, replicas) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "kafka_mock_broker: cannot create topic %s\n", topic);
      return 1;
    }
  std::string path = argv[1];
  std::string tmp = path + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fprintf(f, "%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());
  } else {
    std::fprintf(stderr, "kafka_mock_broker: cannot write %s\n", path.c_str());
    return 1;
  }
  for (int sig = 0; sigwait(&signals, &sig) == 0;) {
    if (sig == SIGTERM || sig == SIGINT)
      break;
    bool down = sig == SIGUSR1;
    for (int id = 1; id <= brokers; ++id) {
      auto err =
        down ? rd_kafka_mock_broker_set_down(mc, id) : rd_kafka_mock_broker_set_up(mc, id);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        std::fprintf(stderr, "kafka_mock_broker: broker %d: %s\n", id, rd_kafka_err2str(err));
    }
    std::fprintf(stderr, "kafka_mock_broker: all brokers %s\n", down ? "down" : "up");
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
