# bash completion for ci-seed. Generated from the option tables (src/platform/cli.rs)
# by tests/cli_docs.rs: do not edit; CI_AGENT_UPDATE_COMPLETIONS=1 cargo test --test cli_docs
# rewrites it.
_ci_words() { mapfile -t COMPREPLY < <(compgen -W "$1" -- "$cur"); }
_ci_files() { compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur"); }
_ci_dirs() { compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur"); }
_ci_seed() {
    local cur prev cmd= i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        batch|validate|serve) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    case $cmd:$prev in
        :-f|:--filesystem) _ci_words "iso vfat"; return ;;
        :-d|:--disk-format) COMPREPLY=(); return ;;
        :-H|:--hostname) COMPREPLY=(); return ;;
        :-I|:--instance-id) COMPREPLY=(); return ;;
        :-i|:--interfaces) _ci_files; return ;;
        :-o|:--output) _ci_files; return ;;
        :-m|:--dsmode) _ci_words "local net"; return ;;
        :-N|:--network-config) _ci_files; return ;;
        :--ip) COMPREPLY=(); return ;;
        :--gateway) COMPREPLY=(); return ;;
        :--dns) COMPREPLY=(); return ;;
        :--search) COMPREPLY=(); return ;;
        :--mac) COMPREPLY=(); return ;;
        :-V|:--vendor-data) _ci_files; return ;;
        :--config) _ci_files; return ;;
        :--known-hosts) _ci_files; return ;;
        batch:-o|batch:--out) _ci_dirs; return ;;
        batch:-u|batch:--user-data) _ci_files; return ;;
        batch:-N|batch:--network-config) _ci_files; return ;;
        batch:-V|batch:--vendor-data) _ci_files; return ;;
        batch:-f|batch:--filesystem) _ci_words "iso vfat"; return ;;
        batch:-m|batch:--dsmode) _ci_words "local net"; return ;;
        batch:--known-hosts) _ci_files; return ;;
        batch:--report) _ci_files; return ;;
        validate:-t|validate:--type) _ci_words "user-data vendor-data meta-data network-config"; return ;;
        serve:--listen) COMPREPLY=(); return ;;
        serve:--dir) _ci_dirs; return ;;
        serve:--timeout) COMPREPLY=(); return ;;
        serve:--max-time) COMPREPLY=(); return ;;
        serve:--max-conns) COMPREPLY=(); return ;;
        serve:--log) _ci_files; return ;;
    esac
    case $cmd in
    "")
        if [[ $cur == -* ]]; then _ci_words "-h --help --version -f --filesystem -d --disk-format -H --hostname -I --instance-id -i --interfaces -o --output -m --dsmode -N --network-config --ip --gateway --dns --search --mac -V --vendor-data --config --no-validate --ssh-host-keys --known-hosts -v --verbose"; elif [[ $COMP_CWORD == 1 ]]; then _ci_words "batch validate serve"; mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$cur"); else _ci_files; fi ;;
    batch)
        _ci_words "-h --help -o --out -u --user-data -N --network-config -V --vendor-data -f --filesystem -m --dsmode --no-validate --ssh-host-keys --known-hosts --no-sync --report -q --quiet -v --verbose" ;;
    validate)
        _ci_words "-h --help -t --type --strict" ;;
    serve)
        _ci_words "-h --help --stdio --listen --dir --timeout --max-time --max-conns --log" ;;
    esac
}
complete -F _ci_seed ci-seed
