#!/usr/bin/env bash
# The images' ENTRYPOINT. Spark on Kubernetes starts its pods with `driver ...` (cluster mode,
# e.g. through the Spark operator) or `executor` (every executor pod); anything else (the
# Airflow chart's `bash -c "exec airflow scheduler"`, a KubernetesExecutor task, `batchscore
# ...`) runs as given. Everything runs under tini, which reaps zombies and forwards signals.
# BATCHSCORE_ENTRYPOINT_DRY_RUN=1 prints the command instead of running it (tests).
set -euo pipefail

spark_classpath() {
  local classpath="${SPARK_HOME:?SPARK_HOME is not set}/jars/*"
  [ -n "${SPARK_CONF_DIR:-}" ] && classpath="$SPARK_CONF_DIR:$classpath"
  [ -n "${SPARK_EXTRA_CLASSPATH:-}" ] && classpath="$classpath:$SPARK_EXTRA_CLASSPATH"
  echo "$classpath"
}

executor_java_opts() {
  # Spark passes executor JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... in order.
  env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//' || true
}

main() {
  local cmd=()
  case "${1:-}" in
    driver)
      shift
      cmd=("$SPARK_HOME/bin/spark-submit"
        --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:?}"
        --deploy-mode client "$@")
      ;;
    executor)
      local opts=()
      mapfile -t opts < <(executor_java_opts)
      cmd=("$JAVA_HOME/bin/java" "${opts[@]}"
        "-Xms${SPARK_EXECUTOR_MEMORY:?}" "-Xmx${SPARK_EXECUTOR_MEMORY}"
        -cp "$(spark_classpath)"
        org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend
        --driver-url "${SPARK_DRIVER_URL:?}" --executor-id "${SPARK_EXECUTOR_ID:?}"
        --cores "${SPARK_EXECUTOR_CORES:?}" --app-id "${SPARK_APPLICATION_ID:?}"
        --hostname "${SPARK_EXECUTOR_POD_IP:?}"
        --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}"
        --podName "${SPARK_EXECUTOR_POD_NAME:?}")
      ;;
    "") cmd=(batchscore --help) ;;
    *) cmd=("$@") ;;
  esac
  if [ "${BATCHSCORE_ENTRYPOINT_DRY_RUN:-}" = 1 ]; then
    printf '%s\n' "${cmd[@]}"
    return 0
  fi
  exec tini -s -- "${cmd[@]}"
}

main "$@"
