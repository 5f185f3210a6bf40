# bash completion for ci-agent. Generated from the option tables (src/platform/cli.rs)
# by tests/cli_docs.rs: do not edit; CI_AGENT_UPDATE_COMPLETIONS=1 cargo test --test cli_docs
# rewrites it.
_ci_words() { mapfile -t COMPREPLY < <(compgen -W "$1" -- "$cur"); }
_ci_files() { compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur"); }
_ci_dirs() { compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur"); }
_ci_agent() {
    local cur prev cmd= i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        run|status|query|seal) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    case $cmd:$prev in
        run:--stage) _ci_words "early late all"; return ;;
        run:--root) _ci_dirs; return ;;
        run:--seed) _ci_files; return ;;
        run:--config) _ci_files; return ;;
        run:--os) _ci_words "linux freebsd"; return ;;
        status:--format) _ci_words "tabular json yaml"; return ;;
        status:--timeout) COMPREPLY=(); return ;;
        status:--root) _ci_dirs; return ;;
        status:--config) _ci_files; return ;;
        status:--os) _ci_words "linux freebsd"; return ;;
        query:--seed) _ci_files; return ;;
        query:--root) _ci_dirs; return ;;
        query:--config) _ci_files; return ;;
        query:--os) _ci_words "linux freebsd"; return ;;
        seal:--root) _ci_dirs; return ;;
        seal:--keep) COMPREPLY=(); return ;;
        seal:--config) _ci_files; return ;;
        seal:--os) _ci_words "linux freebsd"; return ;;
    esac
    case $cmd in
    run)
        _ci_words "--once --stage --root --seed --config -n --dry-run --os -v --verbose -h --help" ;;
    status)
        _ci_words "--json --format -l --long -w --wait --timeout --root --config --os -h --help" ;;
    query)
        _ci_words "-a --all -l --list-keys --seed --root --config --os -h --help" ;;
    seal)
        _ci_words "--root -n --dry-run -y --yes --keep --config --os -h --help" ;;
    "")
        _ci_words "run status query seal help --help -h --version -V" ;;
    help)
        _ci_words "run status query seal" ;;
    esac
}
complete -F _ci_agent ci-agent
