# shellcheck shell=sh disable=SC2016 # awk and sh programs in single quotes on purpose
# shoal init library (docs/internal/init-protocol.md). Generated programs (c<N>.sh) source it after
# setting _sh_sourced=1, then source plan.sh (the stage tables of the Plan); finish.sh (abort and
# timeout handlers) is read only when a stage ends early. Run directly as
# `sh lib.sh finalize-aborted` it closes what the journal says is unfinished.
#
# Names: functions and variables start with _sh_; the stage tables are _S<n> (status), _T<n>
# (start, epoch ms) and _I<n> (retry iteration), n = the stage's index in the Plan.
# Run-time expression values are tagged strings: s<text> n<number> btrue bfalse z (null) and
# l(<newline><item>)* (a list of item string forms). Functions that can fail set _sh_err and
# return 1. User data is only ever expanded inside double quotes or printed with printf '%s'.

_sh_nl='
'
_sh_dir=${SHOAL_DIR:-/.shoal}
_sh_bb=${SHOAL_BUSYBOX:-$_sh_dir/busybox}
_sh_tk=${SHOAL_TOOLKIT-}
_sh_maskf=${SHOAL_MASK-}
_sh_data=${SHOAL_DATA:-/data}
_sh_outs=${SHOAL_OUTPUTS:-/testkube/outputs}
_sh_grace=${SHOAL_KILL_GRACE:-1}
_sh_state=$_sh_dir/state
_sh_j=$_sh_state/journal
_sh_abmsg='The execution has been aborted.'
_sh_sp='\"`${[|&;<>()*?!'"'"
_sh_abort='' _sh_pid='' _sh_wpid='' _sh_gk='' _sh_fpid='' _sh_tohit='' _sh_pz='' _sh_pzref='' _sh_masking=''
_sh_cwd=$PWD _sh_self='' _sh_oclean='' _sh_finread='' _sh_dl='' _sh_dln='' _sh_dlfmt='' _sh_dlref='' _sh_wd='' _sh_err='' _sh_r='' _sh_st=''
_sh_code=0 _sh_det='' _sh_argv0='' _sh_xk='' _sh_xneg=0 _sh_tree='' _sh_xe=_sh_noenv _sh_xmask=''

# ------------------------------------------------------------------------------------------------
# Clock: _sh_ts sets _sh_now (epoch ms) without forking where the shell allows it.

# shellcheck disable=SC3028 # EPOCHREALTIME is only used where the shell provides it
case ${EPOCHREALTIME-} in
*.*)
	_sh_ts() { # seconds.microseconds -> milliseconds
		_sh_t=${EPOCHREALTIME%???}
		_sh_now=${_sh_t%.*}${_sh_t#*.}
	}
	;;
*,*) # bash in a locale with a decimal comma
	_sh_ts() {
		_sh_t=${EPOCHREALTIME%???}
		_sh_now=${_sh_t%,*}${_sh_t#*,}
	}
	;;
*)
	_sh_uptime() {
		read -r _sh_up _sh_idle </proc/uptime
		_sh_up=${_sh_up%.*}${_sh_up#*.}
		while :; do
			case $_sh_up in
			0?*) _sh_up=${_sh_up#0} ;;
			*) break ;;
			esac
		done
	}
	_sh_t=$("$_sh_bb" sh -c 'echo "${EPOCHREALTIME-}"' 2>/dev/null)
	if [ -n "$_sh_t" ] && [ -r /proc/uptime ]; then
		_sh_t=${_sh_t%[.,]*}${_sh_t#*[.,]}
		_sh_uptime
		_sh_base=$((${_sh_t%???} - _sh_up * 10))
		_sh_ts() {
			_sh_uptime
			_sh_now=$((_sh_base + _sh_up * 10))
		}
	else
		_sh_ts() {
			_sh_now=$("$_sh_bb" date +%s)000
		}
	fi
	;;
esac

# ------------------------------------------------------------------------------------------------
# Markers and the journal (fd 5, opened for appending by _sh_init)

_sh_m() { # ref name json
	printf '\001\005\006%s\003%s\004%s\003\n' "$1" "$2" "$3"
}

_sh_jstr() { # text -> _sh_js, escaped for a JSON string
	_sh_js=$1
	[ -n "$1" ] || return 0
	case $_sh_js in
	*[\"\\]* | *[![:print:]]*) ;;
	*) return 0 ;;
	esac
	_sh_jin=$1 _sh_js=''
	while [ -n "$_sh_jin" ]; do
		_sh_jr=${_sh_jin#?}
		_sh_jc=${_sh_jin%"$_sh_jr"}
		_sh_jin=$_sh_jr
		case $_sh_jc in
		\\) _sh_js="$_sh_js\\\\" ;;
		\") _sh_js="$_sh_js\\\"" ;;
		"$_sh_nl") _sh_js="$_sh_js\\n" ;;
		[[:cntrl:]])
			# the escapes Python's json module writes, so that both encoders give the same bytes
			_sh_jo=$(printf '%d' "'$_sh_jc")
			case $_sh_jo in
			8) _sh_js="$_sh_js\\b" ;;
			9) _sh_js="$_sh_js\\t" ;;
			12) _sh_js="$_sh_js\\f" ;;
			13) _sh_js="$_sh_js\\r" ;;
			127) _sh_js=$_sh_js$_sh_jc ;;
			*) _sh_js=$_sh_js$(printf '\\u%04x' "$_sh_jo") ;;
			esac
			;;
		*) _sh_js=$_sh_js$_sh_jc ;;
		esac
	done
}

# _sh_start, _sh_end and _sh_execm print their markers themselves (what _sh_m prints): they run for
# every step, and a function call costs more than the printf.
_sh_start() { # n ref [step-id]: the stage starts (the caller has set _S<n>=running)
	_sh_ts
	printf '_S%s=running\n_T%s=%s\n' "$1" "$1" "$_sh_now" >&5
	printf '\001\005\006%s\003start\004{"ts":%s}\003\n' "$2" "$_sh_now"
	if [ -n "${3-}" ] && [ ! -d "$_sh_data/.steps/$3" ]; then
		"$_sh_bb" mkdir -p "$_sh_data/.steps/$3" || :
	fi
}

_sh_end() { # n ref status (the caller has set _S<n>)
	_sh_ts
	printf '_S%s=%s\n' "$1" "$3" >&5
	printf '\001\005\006%s\003end\004{"ts":%s,"status":"%s"}\003\n' "$2" "$_sh_now" "$3"
}

_sh_execm() { # ref code details iteration
	if [ -n "$3" ]; then
		_sh_jstr "$3"
	else
		_sh_js=''
	fi
	printf '\001\005\006%s\003execution\004{"code":%s,"details":"%s","iteration":%s}\003\n' \
		"$1" "$2" "$_sh_js" "$4"
}

_sh_abort_op() { # n ref iteration: an operation that was running when the program died
	_sh_execm "$2" -1 "$_sh_abmsg" "$3"
	_sh_end "$1" "$2" aborted
}

_sh_setpause() { # n ref: pause before the next operation that runs
	_sh_pz=$1 _sh_pzref=$2
	printf "_sh_pz=%s\n_sh_pzref='%s'\n" "$1" "$2" >&5
}

_sh_unpause() {
	_sh_pz='' _sh_pzref=''
	printf '_sh_pz=\n' >&5
}

# ------------------------------------------------------------------------------------------------
# Program life cycle

_sh_onsig() {
	_sh_abort=1
	[ -n "$_sh_pid" ] || return 0
	if [ -n "$_sh_dl" ]; then
		kill -TERM "-$_sh_pid" 2>/dev/null || kill -TERM "$_sh_pid" 2>/dev/null || :
	else
		_sh_killtree TERM "$_sh_pid"
	fi
}

# Operations without a deadline stay in the program's process group (no setsid exec on the hot
# path, and the runtime's kill of that group reaches them); an abort finds their tree in /proc.
_sh_killtree() { # signal pid: signal the process and its descendants; their pids -> _sh_tree
	_sh_kt_sig=$1 _sh_tree=$2 _sh_kt_all=''
	for _sh_kt_d in /proc/[0-9]*; do
		_sh_kt_l=''
		read -r _sh_kt_l 2>/dev/null <"$_sh_kt_d/stat" || [ -n "$_sh_kt_l" ] || continue
		_sh_kt_l=${_sh_kt_l##*) }
		_sh_kt_l=${_sh_kt_l#* }
		_sh_kt_all="$_sh_kt_all ${_sh_kt_l%% *}:${_sh_kt_d#/proc/}"
	done
	_sh_kt_todo=$2
	while [ -n "$_sh_kt_todo" ]; do
		_sh_kt_p=${_sh_kt_todo%% *}
		case $_sh_kt_todo in
		*" "*) _sh_kt_todo=${_sh_kt_todo#* } ;;
		*) _sh_kt_todo='' ;;
		esac
		for _sh_kt_e in $_sh_kt_all; do
			case $_sh_kt_e in
			"$_sh_kt_p":*)
				_sh_tree="$_sh_tree ${_sh_kt_e#*:}"
				_sh_kt_todo="$_sh_kt_todo${_sh_kt_todo:+ }${_sh_kt_e#*:}"
				;;
			esac
		done
	done
	# shellcheck disable=SC2086 # a list of pids
	kill -"$_sh_kt_sig" $_sh_tree 2>/dev/null || :
}

_sh_load() {
	if [ -f "$_sh_j" ]; then
		# The journal holds assignments written by this library only (statuses, numbers, refs).
		# shellcheck source=/dev/null
		. "$_sh_j"
	fi
}

_sh_init() { # called by every program before its first action
	if [ ! -d "$_sh_state" ] && ! "$_sh_bb" mkdir -p "$_sh_state"; then
		printf 'shoal init: cannot create %s\n' "$_sh_state" >&2
		exit 155
	fi
	[ -d "$_sh_outs" ] || "$_sh_bb" mkdir -p "$_sh_outs" 2>/dev/null || :
	_sh_load
	_sh_flags
	exec 5>>"$_sh_j"
	if [ -n "$_sh_maskf" ] && [ -s "$_sh_maskf" ]; then
		_sh_masking=1
	fi
	exec 4>&1
	trap _sh_onsig TERM INT
	trap '_sh_tohit=1' USR1
	if _sh_crashed; then
		_sh_abort_exit
	fi
}

_sh_mkdirs() { # step-id...: the missing results dirs among these, in one mkdir
	# (programs make the dirs of the stages they start when they begin, up to 64 ids a call: a fork
	# and exec per stage would cost more than the step it prepares; _sh_start makes one that is
	# missing again)
	_sh_mk=$#
	for _sh_i; do
		[ -d "$_sh_data/.steps/$_sh_i" ] || set -- "$@" "$_sh_data/.steps/$_sh_i"
	done
	shift "$_sh_mk"
	[ "$#" -eq 0 ] || "$_sh_bb" mkdir -p "$@" 2>/dev/null || :
}

_sh_finishers() { # finish.sh (_sh_abort_all, _sh_to_<n>): read when a stage ends early
	[ -z "$_sh_finread" ] || return 0
	# shellcheck source=/dev/null
	. "$_sh_dir/finish.sh" || exit 155
	_sh_finread=1
}

_sh_abort_exit() {
	trap '' TERM INT
	_sh_finishers
	_sh_abort_all
	exit 137
}

_sh_finalize() { # lib.sh finalize-aborted
	[ -f "$_sh_j" ] || return 0
	# shellcheck source=/dev/null
	. "$_sh_dir/plan.sh" || exit 155
	_sh_load
	exec 5>>"$_sh_j"
	_sh_finishers
	_sh_abort_all
}

# ------------------------------------------------------------------------------------------------
# Operations

# Watchdog (own process group): after $1 s, notify pid $4 (0: none) with USR1, TERM process group
# $2, after $3 s more KILL it. Stopped with KILL to its group (a TERM could be lost between fork
# and exec, while the child still runs this shell's trap).
_sh_wdog='"$0" sleep "$1"
[ "$4" = 0 ] || kill -USR1 "$4"
kill -TERM "-$2" 2>/dev/null || kill -TERM "$2" 2>/dev/null
"$0" sleep "$3"
kill -KILL "-$2" 2>/dev/null || kill -KILL "$2" 2>/dev/null'

_sh_watch() { # delay-ms notify-pid: starts a watchdog on _sh_pid; its pid -> _sh_w
	_sh_w=$1
	[ "$_sh_w" -gt 0 ] || _sh_w=0
	_sh_wf=$((_sh_w % 1000 + 1000))
	"$_sh_bb" setsid "$_sh_bb" sh -c "$_sh_wdog" "$_sh_bb" "$((_sh_w / 1000)).${_sh_wf#1}" \
		"$_sh_pid" "$_sh_grace" "$2" </dev/null >/dev/null 2>&1 &
	_sh_w=$!
}

# An operation runs as `(<exports>; [cd]; exec <command>) >&4 2>&4 4>&- 5>&- &`, then the program sets
# _sh_pid=$! and, when a masking filter runs, points fd 4 back to its stdout.
_sh_spawn_pre() { # env-function: start the masking filter when needed; the operation writes to fd 4
	[ -n "$_sh_masking$_sh_xmask" ] || return 0
	_sh_fifo=$_sh_state/mask.fifo
	if [ ! -p "$_sh_fifo" ] && ! "$_sh_bb" mkfifo "$_sh_fifo"; then
		_sh_err="cannot create $_sh_fifo"
		return 1
	fi
	(
		"$1" || exit 1
		_SHOAL_MASK_NAMES=$_sh_xmask
		export _SHOAL_MASK_NAMES
		exec "$_sh_bb" awk "$_sh_awk_mask" "$_sh_maskf"
	) <"$_sh_fifo" &
	_sh_fpid=$!
	exec 4>"$_sh_fifo"
}

# The operation's process: its own process group (setsid) only when a deadline may kill it.
_sh_exec_shell() { # script
	if [ -n "$_sh_dl" ]; then
		exec "$_sh_bb" setsid "$_sh_bb" sh -c "set -e$_sh_nl$1"
	fi
	exec "$_sh_bb" sh -c "set -e$_sh_nl$1"
}

_sh_exec_run() { # argv: looks the command up in PATH itself (busybox setsid prefers its applets)
	_sh_p=$1
	case $1 in
	*/*) ;;
	*)
		_sh_p=''
		set -f
		_sh_ifs=$IFS
		IFS=:
		for _sh_d in $PATH; do
			[ -n "$_sh_d" ] || _sh_d=.
			if [ -f "$_sh_d/$1" ] && [ -x "$_sh_d/$1" ]; then
				_sh_p=$_sh_d/$1
				break
			fi
		done
		IFS=$_sh_ifs
		set +f
		if [ -z "$_sh_p" ]; then
			printf '%s: command not found\n' "$1" >&2
			exit 127
		fi
		;;
	esac
	shift
	if [ -n "$_sh_dl" ]; then
		exec "$_sh_bb" setsid "$_sh_p" "$@"
	fi
	exec "$_sh_p" "$@"
}

_sh_exec_toolkit() { # kind ref
	set -f
	IFS=' 	'
	# shellcheck disable=SC2086 # SHOAL_TOOLKIT is a command line: split on blanks on purpose
	set -- $_sh_tk "$1" "$2"
	if [ -n "$_sh_dl" ]; then
		exec "$_sh_bb" setsid "$@"
	fi
	exec "$@"
}

_sh_exec_sleep() { # seconds
	if [ -n "$_sh_dl" ]; then
		exec "$_sh_bb" setsid "$_sh_bb" sleep "$1"
	fi
	exec "$_sh_bb" sleep "$1"
}

_sh_setwd() { # _sh_wd (may be relative) -> created, absolute, and the cwd of expressions
	[ -n "$_sh_wd" ] || return 0
	case $_sh_wd in
	/*) ;;
	*) _sh_wd=$PWD/$_sh_wd ;;
	esac
	if [ ! -d "$_sh_wd" ] && ! "$_sh_bb" mkdir -p "$_sh_wd" 2>/dev/null; then
		_sh_err="cannot create working directory $_sh_wd"
		return 1
	fi
	if [ ! -x "$_sh_wd" ]; then
		_sh_err="cannot enter working directory $_sh_wd"
		return 1
	fi
	_sh_cwd=$_sh_wd
}

_sh_wait() { # waits for _sh_pid; a trapped signal interrupts wait, so wait again while it lives
	while :; do
		if [ -n "$_sh_abort" ] && [ -z "$_sh_gk" ]; then
			# TERM again at once (one sent between fork and exec is lost), KILL after the grace
			_sh_watch 0 0
			_sh_gk=$_sh_w
		fi
		wait "$_sh_pid" 2>/dev/null
		_sh_code=$?
		[ "$_sh_code" -gt 128 ] || break
		kill -0 "$_sh_pid" 2>/dev/null || break
	done
}

_sh_reap() { # after the operation's leader exited
	if [ -n "$_sh_tohit$_sh_abort" ]; then
		if [ -n "$_sh_dl" ]; then
			kill -KILL "-$_sh_pid" 2>/dev/null || :
		else
			# shellcheck disable=SC2086 # what the abort signalled, even if reparented since
			kill -KILL $_sh_tree 2>/dev/null || :
		fi
	fi
	for _sh_p in $_sh_wpid $_sh_gk; do
		kill -KILL "-$_sh_p" 2>/dev/null || kill -KILL "$_sh_p" 2>/dev/null || :
		wait "$_sh_p" 2>/dev/null
	done
	if [ -n "$_sh_fpid" ]; then
		wait "$_sh_fpid" 2>/dev/null
	fi
	_sh_pid='' _sh_wpid='' _sh_gk='' _sh_fpid=''
}

_sh_signame() { # number -> _sh_sig
	case $1 in
	1) _sh_sig=HUP ;; 2) _sh_sig=INT ;; 3) _sh_sig=QUIT ;; 4) _sh_sig=ILL ;; 5) _sh_sig=TRAP ;;
	6) _sh_sig=ABRT ;; 7) _sh_sig=BUS ;; 8) _sh_sig=FPE ;; 9) _sh_sig=KILL ;; 10) _sh_sig=USR1 ;;
	11) _sh_sig=SEGV ;; 12) _sh_sig=USR2 ;; 13) _sh_sig=PIPE ;; 14) _sh_sig=ALRM ;; 15) _sh_sig=TERM ;;
	16) _sh_sig=STKFLT ;; 17) _sh_sig=CHLD ;; 18) _sh_sig=CONT ;; 19) _sh_sig=STOP ;; 20) _sh_sig=TSTP ;;
	21) _sh_sig=TTIN ;; 22) _sh_sig=TTOU ;; 23) _sh_sig=URG ;; 24) _sh_sig=XCPU ;; 25) _sh_sig=XFSZ ;;
	26) _sh_sig=VTALRM ;; 27) _sh_sig=PROF ;; 28) _sh_sig=WINCH ;; 29) _sh_sig=IO ;; 30) _sh_sig=PWR ;;
	31) _sh_sig=SYS ;; *) _sh_sig=$1 ;;
	esac
}

_sh_explain() { # _sh_code (non-zero) -> _sh_det
	case $_sh_code in
	126) [ "$_sh_xk" != run ] || _sh_det="cannot execute $_sh_argv0" ;;
	127)
		if [ "$_sh_xk" = run ]; then
			_sh_det="command not found: $_sh_argv0"
		else
			_sh_det='exit code 127: command not found'
		fi
		;;
	*)
		if [ "$_sh_code" -gt 128 ] && [ "$_sh_code" -le 192 ]; then
			_sh_signame $((_sh_code - 128))
			_sh_det="killed by signal $_sh_sig"
		fi
		;;
	esac
}

_sh_attempt() { # one attempt of operation _sh_xn -> _sh_code _sh_det _sh_st (error: init failure)
	_sh_code=0 _sh_det='' _sh_st='' _sh_pid='' _sh_wpid='' _sh_gk='' _sh_fpid='' _sh_tohit='' _sh_err='' _sh_argv0=''
	_sh_oclean=''
	if [ -n "$_sh_abort" ]; then
		_sh_code=-1 _sh_det=$_sh_abmsg _sh_st=aborted
		return 0
	fi
	if ! "_sh_op_$_sh_xn"; then
		_sh_code=-1 _sh_det=$_sh_err _sh_st=error
		return 0
	fi
	if [ -n "$_sh_pid" ]; then
		if [ -n "$_sh_dl" ]; then
			_sh_ts
			_sh_watch $((_sh_dl - _sh_now)) $$
			_sh_wpid=$_sh_w
		fi
		[ -z "$_sh_abort" ] || _sh_onsig # the signal came before the pid was known
		_sh_wait
		if [ -n "$_sh_tohit$_sh_abort$_sh_wpid$_sh_gk$_sh_fpid" ]; then
			_sh_reap
		else
			_sh_pid=''
		fi
	fi
	if [ -n "$_sh_tohit" ]; then
		_sh_st=timeout _sh_det="timed out after $_sh_dlfmt"
		[ -z "$_sh_dlref" ] || _sh_det="$_sh_det (timeout of $_sh_dlref)"
	elif [ -n "$_sh_abort" ]; then
		_sh_st=aborted _sh_det=$_sh_abmsg
	else
		if [ "$_sh_code" -eq 0 ]; then
			_sh_st=passed
		else
			_sh_st=failed
			_sh_explain
		fi
		if [ "$_sh_xneg" = 1 ]; then
			if [ "$_sh_st" = passed ]; then _sh_st=failed; else _sh_st=passed; fi
		fi
	fi
}

_sh_dlc() { # deadline-ms stage-index timeout-text ancestor-ref: keep the earliest deadline
	if [ -z "$_sh_dl" ] || [ "$1" -lt "$_sh_dl" ]; then
		_sh_dl=$1 _sh_dln=$2 _sh_dlfmt=$3 _sh_dlref=$4
	fi
}

_sh_exec() { # n ref kind negative retries step-id until-function -> _sh_st
	_sh_xn=$1 _sh_xk=$3 _sh_xneg=$4 _sh_xmax=$(($5 + 1)) _sh_xid=$6 _sh_xu=$7
	_sh_it=1 _sh_st=''
	if [ -n "$_sh_pz" ] && ! _sh_pause; then
		_sh_execm "$2" -1 "$_sh_abmsg" 1
		_sh_st=aborted
		return 0
	fi
	while :; do
		if [ -n "$_sh_dl" ]; then
			_sh_ts
			if [ "$_sh_now" -ge "$_sh_dl" ]; then
				_sh_st=timeout
				return 0
			fi
		fi
		if [ "$_sh_it" -gt 1 ]; then
			printf '_I%s=%s\n' "$1" "$_sh_it" >&5
			_sh_m "$2" iteration "{\"n\":$_sh_it}"
		fi
		# outputs only matter for steps with an id: clear them there, not before every operation
		[ -z "$_sh_xid" ] || _sh_clear_outputs
		_sh_attempt
		[ -z "$_sh_xid" ] || _sh_collect "$2"
		_sh_more=''
		case $_sh_st in
		error) _sh_st=failed ;;
		passed | failed)
			if [ "$_sh_it" -lt "$_sh_xmax" ]; then
				if [ -z "$_sh_xu" ]; then
					[ "$_sh_st" = passed ] || _sh_more=1
				else
					_sh_self=$_sh_st
					if "$_sh_xu"; then
						_sh_truthy "$_sh_r" || _sh_more=1
					else
						_sh_det="retry.until: $_sh_err" _sh_st=failed
					fi
					_sh_self=''
				fi
			fi
			;;
		esac
		_sh_execm "$2" "$_sh_code" "$_sh_det" "$_sh_it"
		[ -n "$_sh_more" ] || return 0
		if [ -n "$_sh_abort" ]; then
			_sh_st=aborted
			return 0
		fi
		_sh_it=$((_sh_it + 1))
	done
}

_sh_fin() { # n ref: record the result of _sh_exec (the caller has set _S<n> unless timeout)
	case $_sh_st in
	timeout)
		_sh_finishers
		"_sh_to_$_sh_dln"
		;;
	aborted)
		_sh_end "$1" "$2" aborted
		_sh_abort_exit
		;;
	*) _sh_end "$1" "$2" "$_sh_st" ;;
	esac
}

_sh_pause() { # prints pause, blocks on the control FIFO until a "resume" line; 1 when aborted
	_sh_ctl=$_sh_dir/control
	if [ ! -p "$_sh_ctl" ]; then
		"$_sh_bb" rm -f "$_sh_ctl"
		"$_sh_bb" mkfifo "$_sh_ctl" || :
	fi
	_sh_ts
	_sh_m "$_sh_pzref" pause "{\"ts\":$_sh_now}"
	(
		# read-write: this reader is also a writer, so a read blocks instead of seeing EOF and no
		# line is lost between two writers
		exec 3<>"$_sh_ctl" || exit 1
		_sh_l=''
		while IFS= read -r _sh_l <&3 || [ -n "$_sh_l" ]; do
			[ "$_sh_l" != resume ] || exit 0
			_sh_l=''
		done
		exit 1
	) &
	_sh_pid=$!
	[ -z "$_sh_abort" ] || kill -KILL "$_sh_pid" 2>/dev/null || :
	while :; do
		wait "$_sh_pid" 2>/dev/null
		[ "$?" -gt 128 ] || break
		kill -0 "$_sh_pid" 2>/dev/null || break
		[ -z "$_sh_abort" ] || kill -KILL "$_sh_pid" 2>/dev/null || :
	done
	_sh_pid=''
	[ -z "$_sh_abort" ] || return 1
	_sh_ts
	_sh_m "$_sh_pzref" resume "{\"ts\":$_sh_now}"
	_sh_unpause
}

# _sh_oclean: $SHOAL_OUTPUTS was found empty after the last attempt (no operation has run since), so
# the next step with an id need not scan it again before its first attempt.
_sh_clear_outputs() {
	[ -z "$_sh_oclean" ] || return 0
	for _sh_f in "$_sh_outs"/* "$_sh_outs"/.[!.]* "$_sh_outs"/..?*; do
		if [ -e "$_sh_f" ] || [ -L "$_sh_f" ]; then
			"$_sh_bb" rm -rf "$_sh_outs"/* "$_sh_outs"/.[!.]* "$_sh_outs"/..?* 2>/dev/null || :
			return 0
		fi
	done
}

_sh_collect() { # ref: outputs of the attempt -> state + an output marker (step id _sh_xid)
	_sh_oclean=1
	for _sh_f in "$_sh_outs"/* "$_sh_outs"/.[!.]* "$_sh_outs"/..?*; do
		[ -e "$_sh_f" ] || [ -L "$_sh_f" ] || continue
		_sh_oclean=''
		[ -f "$_sh_f" ] || continue
		_sh_od=$_sh_state/outputs/$_sh_xid
		if [ -d "$_sh_od" ]; then
			"$_sh_bb" rm -f "$_sh_od"/* "$_sh_od"/.[!.]* "$_sh_od"/..?* 2>/dev/null
		elif ! "$_sh_bb" mkdir -p "$_sh_od"; then
			return 0
		fi
		(
			"$_sh_xe" && _SHOAL_MASK_NAMES=$_sh_xmask &&
				export _SHOAL_MASK_NAMES &&
				exec "$_sh_bb" find "$_sh_outs" -mindepth 1 -maxdepth 1 -type f -size -4097c \
					-exec "$_sh_bb" awk "$_sh_awk_out" "$_sh_maskf" "$_sh_od" "$1" '{}' +
		)
		return 0
	done
}

# awk helpers shared by the masking filter and the outputs collector (mask file names -> values).
_sh_awk_common='
function repl(s, a, b,    out, p) {
	out = ""
	while ((p = index(s, a)) > 0) { out = out substr(s, 1, p - 1) b; s = substr(s, p + length(a)) }
	return out s
}
function addmask(name,    v) {
	if (name == "" || !(name in ENVIRON)) return
	v = ENVIRON[name]
	if (length(v) >= 4) vals[++nv] = v
}
function loadmask(f,    name, n, i, j, t, extra) {
	nv = 0
	n = split(ENVIRON["_SHOAL_MASK_NAMES"], extra, " ")
	for (i = 1; i <= n; i++) addmask(extra[i])
	if (f != "") {
		while ((getline name < f) > 0) addmask(name)
		close(f)
	}
	for (i = 2; i <= nv; i++) {
		t = vals[i]
		for (j = i - 1; j >= 1 && length(vals[j]) < length(t); j--) vals[j + 1] = vals[j]
		vals[j + 1] = t
	}
}
function mask(s,    i) {
	for (i = 1; i <= nv; i++) s = repl(s, vals[i], "****")
	return s
}
'
_sh_awk_mask=$_sh_awk_common'
BEGIN { loadmask(ARGV[1]); ARGV[1] = "" }
{ print mask($0); fflush() }
'
_sh_awk_out=$_sh_awk_common'
function jesc(s,    i, c) {
	s = repl(s, "\\", "\\\\"); s = repl(s, "\"", "\\\""); s = repl(s, "\n", "\\n")
	s = repl(s, "\r", "\\r"); s = repl(s, "\t", "\\t")
	s = repl(s, sprintf("%c", 8), "\\b"); s = repl(s, "\f", "\\f")
	for (i = 1; i < 32; i++) { c = sprintf("%c", i); if (index(s, c)) s = repl(s, c, sprintf("\\u%04x", i)) }
	return s
}
function trim(s,    ws) {
	ws = " \t\n\r\f" sprintf("%c", 11)
	while (s != "" && index(ws, substr(s, 1, 1))) s = substr(s, 2)
	while (s != "" && index(ws, substr(s, length(s), 1))) s = substr(s, 1, length(s) - 1)
	return s
}
BEGIN {
	loadmask(ARGV[1]); dir = ARGV[2]; ref = ARGV[3]; out = ""
	for (i = 4; i < ARGC; i++) {
		f = ARGV[i]; c = ""; first = 1
		while ((getline l < f) > 0) { c = first ? l : c "\n" l; first = 0 }
		close(f)
		c = trim(c); k = f; sub(/.*\//, "", k)
		printf "%s", c > (dir "/" k); close(dir "/" k)
		out = out (out == "" ? "" : ",") "\"" jesc(k) "\":\"" jesc(mask(c)) "\""
	}
	if (out != "") printf "\001\005\006%s\003output\004{%s}\003\n", ref, out
	exit
}
'

# ------------------------------------------------------------------------------------------------
# Run-time expression values (see the tags at the top)

_sh_truthy() {
	case $1 in
	s | sfalse | s0 | soff | n0 | bfalse | z | l) return 1 ;;
	esac
	return 0
}

_sh_repl() { # text from to -> _sh_rp (every occurrence replaced)
	_sh_rp='' _sh_rx=$1
	while :; do
		case $_sh_rx in
		*"$2"*) ;;
		*) break ;;
		esac
		_sh_rp=$_sh_rp${_sh_rx%%"$2"*}$3
		_sh_rx=${_sh_rx#*"$2"}
	done
	_sh_rp=$_sh_rp$_sh_rx
}

_sh_str() { # value -> _sh_s (string form)
	case $1 in
	s* | n*) _sh_s=${1#?} ;;
	b*) _sh_s=${1#b} ;;
	l*)
		_sh_s=${1#l}
		_sh_repl "${_sh_s#"$_sh_nl"}" "$_sh_nl" ,
		_sh_s=$_sh_rp
		;;
	*) _sh_s='' ;;
	esac
}

_sh_bool() { # status of the previous command -> _sh_r
	if [ "$1" = 0 ]; then _sh_r=btrue; else _sh_r=bfalse; fi
}

_sh_ref() { # status of a stage -> _sh_r (true unless failed, timed out or aborted)
	case $1 in
	failed | timeout | aborted) _sh_r=bfalse ;;
	*) _sh_r=btrue ;;
	esac
}

_sh_self_status() { # what self.* sees: the attempt status in retry.until, else the stage status
	_sh_s=$_sh_self
	case $_sh_s in '' | running) _sh_s=${1-} ;; esac
	case $_sh_s in running) _sh_s='' ;; esac
}

_sh_awk_num='
function fmt(x,    s, i) {
	if (x == 0) return "0"
	if (x == int(x) && x < 1e21 && x > -1e21) return sprintf("%.0f", x)
	for (i = 15; i <= 17; i++) { s = sprintf("%." i "g", x); if (s + 0 == x) break }
	return s
}
function isnum(v) { return v ~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/ }
BEGIN {
	if (!isnum(a) || (op != "norm" && op != "int" && !isnum(b))) exit 1
	a += 0; b += 0
	if (op == "norm") r = a
	else if (op == "int") r = int(a)
	else if (op == "+") r = a + b
	else if (op == "-") r = a - b
	else if (op == "*") r = a * b
	else if (op == "/") { if (b == 0) exit 2; r = a / b }
	else if (op == "%") { if (b == 0) exit 3; r = a - b * int(a / b) }
	else if (op == "**") {
		# busybox awk has no math library: whole exponents only, by squaring
		if (b != int(b)) exit 4
		n = b < 0 ? -b : b; r = 1; x = a
		while (n > 0) { if (n % 2 == 1) r *= x; x *= x; n = int(n / 2) }
		if (b < 0) { if (r == 0) exit 2; r = 1 / r }
	}
	else { r = (op == "<") ? a < b : (op == "<=") ? a <= b : (op == ">") ? a > b : a >= b; print r; exit }
	print fmt(r)
}
'

_sh_awkn() { # op a b -> _sh_n; 1 invalid number, 2/3 division/modulo by zero
	_sh_n=$("$_sh_bb" awk -v op="$1" -v a="$2" -v b="$3" "$_sh_awk_num")
}

_sh_num() { # value -> _sh_n (number text: canonical integer, or a float as awk prints it)
	case $1 in
	n*)
		_sh_n=${1#n}
		return 0
		;;
	z)
		_sh_n=0
		return 0
		;;
	esac
	_sh_str "$1"
	_sh_n=$_sh_s
	case $_sh_n in
	'' | *[!0-9.eE+-]*) ;;
	[+-] | *[0-9][+-]* | *[!0-9+-]* | ????????????????*)
		if _sh_awkn norm "$_sh_s" 0; then return 0; fi
		;;
	*)
		case $_sh_n in
		-*) _sh_sign=- ;;
		*) _sh_sign='' ;;
		esac
		case $_sh_n in [+-]*) _sh_n=${_sh_n#?} ;; esac
		while :; do
			case $_sh_n in
			0?*) _sh_n=${_sh_n#0} ;;
			*) break ;;
			esac
		done
		case $_sh_n in
		'' | *[!0-9]*) ;;
		0) return 0 ;;
		*)
			_sh_n=$_sh_sign$_sh_n
			return 0
			;;
		esac
		;;
	esac
	_sh_err="cannot convert '$_sh_s' to a number"
	return 1
}

_sh_arith() { # op a b -> _sh_r (number, or bool for comparisons)
	_sh_num "$2" || return 1
	_sh_na=$_sh_n
	_sh_num "$3" || return 1
	_sh_nb=$_sh_n
	case $1$_sh_na$_sh_nb in
	*[.eE]* | '**'*) ;;
	/*) if [ "$_sh_nb" != 0 ] && [ $((_sh_na % _sh_nb)) -eq 0 ]; then
		_sh_r=n$((_sh_na / _sh_nb))
		return 0
	fi ;;
	%*) if [ "$_sh_nb" != 0 ]; then
		_sh_r=n$((_sh_na % _sh_nb))
		return 0
	fi ;;
	+*)
		_sh_r=n$((_sh_na + _sh_nb))
		return 0
		;;
	-*)
		_sh_r=n$((_sh_na - _sh_nb))
		return 0
		;;
	'*'*)
		_sh_r=n$((_sh_na * _sh_nb))
		return 0
		;;
	'<='*)
		[ "$_sh_na" -le "$_sh_nb" ]
		_sh_bool $?
		return 0
		;;
	'>='*)
		[ "$_sh_na" -ge "$_sh_nb" ]
		_sh_bool $?
		return 0
		;;
	'<'*)
		[ "$_sh_na" -lt "$_sh_nb" ]
		_sh_bool $?
		return 0
		;;
	'>'*)
		[ "$_sh_na" -gt "$_sh_nb" ]
		_sh_bool $?
		return 0
		;;
	esac
	_sh_awkn "$1" "$_sh_na" "$_sh_nb"
	case $? in
	0) ;;
	2)
		_sh_err='cannot divide by zero'
		return 1
		;;
	3)
		_sh_err='cannot modulo by zero'
		return 1
		;;
	4)
		_sh_err="cannot compute $_sh_na ** $_sh_nb at run time: the exponent must be a whole number"
		return 1
		;;
	*)
		_sh_err="cannot compute $_sh_na $1 $_sh_nb"
		return 1
		;;
	esac
	case $1 in
	'<' | '<=' | '>' | '>=') if [ "$_sh_n" = 1 ]; then _sh_r=btrue; else _sh_r=bfalse; fi ;;
	*) _sh_r=n$_sh_n ;;
	esac
}

_sh_op() { # op a b -> _sh_r for == != + and the arithmetic operators
	case $1 in
	== | !=)
		_sh_str "$2"
		_sh_oa=$_sh_s
		_sh_str "$3"
		[ "$_sh_oa" = "$_sh_s" ]
		_sh_bool $?
		if [ "$1" = '!=' ]; then
			if [ "$_sh_r" = btrue ]; then _sh_r=bfalse; else _sh_r=btrue; fi
		fi
		;;
	+)
		case $2$3 in
		s*) ;;
		*)
			case $3 in
			s*) ;;
			*)
				_sh_arith + "$2" "$3"
				return
				;;
			esac
			;;
		esac
		_sh_str "$2"
		_sh_oa=$_sh_s
		_sh_str "$3"
		_sh_r=s$_sh_oa$_sh_s
		;;
	*) _sh_arith "$@" ;;
	esac
}

_sh_not() {
	if _sh_truthy "$1"; then _sh_r=bfalse; else _sh_r=btrue; fi
}

_sh_neg() {
	_sh_arith - n0 "$1"
}

# ------------------------------------------------------------------------------------------------
# Standard functions available at run time: _sh_fn_<name> args... -> _sh_r

_sh_fn_string() {
	_sh_fa=''
	for _sh_a; do
		_sh_str "$_sh_a"
		_sh_fa=$_sh_fa$_sh_s
	done
	_sh_r=s$_sh_fa
}

_sh_fn_bool() {
	if [ "$#" -ne 1 ]; then
		_sh_err="\"bool\" function expects 1 arguments, $# provided"
		return 1
	fi
	if _sh_truthy "$1"; then _sh_r=btrue; else _sh_r=bfalse; fi
}

_sh_fn_int() {
	if [ "$#" -ne 1 ]; then
		_sh_err="\"int\" function expects 1 arguments, $# provided"
		return 1
	fi
	_sh_num "$1" || return 1
	case $_sh_n in
	*[.eE]*)
		_sh_awkn int "$_sh_n" 0 || {
			_sh_err="cannot convert '$_sh_n' to an integer"
			return 1
		}
		;;
	esac
	_sh_r=n$_sh_n
}

_sh_fn_len() {
	if [ "$#" -ne 1 ]; then
		_sh_err="\"len\" function expects 1 arguments, $# provided"
		return 1
	fi
	case $1 in
	s*)
		_sh_s=${1#s}
		_sh_r=n${#_sh_s}
		;;
	l*)
		_sh_s=${1#l} _sh_fn=0
		while :; do
			case $_sh_s in
			*"$_sh_nl"*) ;;
			*) break ;;
			esac
			_sh_s=${_sh_s#*"$_sh_nl"}
			_sh_fn=$((_sh_fn + 1))
		done
		_sh_r=n$_sh_fn
		;;
	*)
		_sh_str "$1"
		_sh_err="\"len\" function expects a string, list or map, '$_sh_s' provided"
		return 1
		;;
	esac
}

_sh_fn_trim() {
	if [ "$#" -ne 1 ]; then
		_sh_err="\"trim\" function expects 1 arguments, $# provided"
		return 1
	fi
	case $1 in
	s*) ;;
	*)
		_sh_err='"trim" function argument should be a string'
		return 1
		;;
	esac
	_sh_s=${1#s}
	_sh_s=${_sh_s#"${_sh_s%%[![:space:]]*}"}
	_sh_s=${_sh_s%"${_sh_s##*[![:space:]]}"}
	_sh_r=s$_sh_s
}

_sh_qword() { # word -> _sh_q, as shellquote() quotes one word
	case $1 in
	'')
		_sh_q="''"
		return 0
		;;
	*[[:blank:]]* | *"$_sh_nl"*)
		_sh_q='' _sh_w=$1
		while :; do
			case $_sh_w in
			*\'*) ;;
			*) break ;;
			esac
			_sh_pre=${_sh_w%%\'*}
			[ -z "$_sh_pre" ] || _sh_q="$_sh_q'$_sh_pre'"
			_sh_q="$_sh_q\\'"
			_sh_w=${_sh_w#*\'}
		done
		[ -z "$_sh_w" ] || _sh_q="$_sh_q'$_sh_w'"
		return 0
		;;
	esac
	_sh_q='' _sh_w=$1
	while [ -n "$_sh_w" ]; do
		_sh_rest=${_sh_w#?}
		_sh_c=${_sh_w%"$_sh_rest"}
		_sh_w=$_sh_rest
		case $_sh_sp in
		*"$_sh_c"*) _sh_q="$_sh_q\\$_sh_c" ;;
		*) _sh_q=$_sh_q$_sh_c ;;
		esac
	done
	case $1 in "~"*) _sh_q="\\$_sh_q" ;; esac
}

_sh_fn_shellquote() {
	_sh_fa=''
	for _sh_a; do
		_sh_str "$_sh_a"
		_sh_qword "$_sh_s"
		_sh_fa=$_sh_fa${_sh_fa:+ }$_sh_q
	done
	_sh_r=s$_sh_fa
}

_sh_fn_join() {
	if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
		_sh_err="\"join\" function expects 1-2 arguments, $# provided"
		return 1
	fi
	case $1 in
	z)
		_sh_r=z
		return 0
		;;
	l*) ;;
	*)
		_sh_str "$1"
		_sh_err="\"join\" function expects a list as 1st argument, '$_sh_s' provided"
		return 1
		;;
	esac
	_sh_fs=,
	if [ "$#" -eq 2 ]; then
		_sh_str "$2"
		_sh_fs=$_sh_s
	fi
	_sh_s=${1#l}
	_sh_repl "${_sh_s#"$_sh_nl"}" "$_sh_nl" "$_sh_fs"
	_sh_r=s$_sh_rp
}

_sh_fn_at() { # list index or string character (items come back as strings)
	if [ "$#" -ne 2 ]; then
		_sh_err="\"at\" function expects 2 arguments, $# provided"
		return 1
	fi
	case $1 in
	l*) _sh_what=list ;;
	s*) _sh_what=string ;;
	*)
		_sh_str "$1"
		_sh_err="properties exist only on lists, maps and strings, not on '$_sh_s'"
		return 1
		;;
	esac
	if ! _sh_fn_int "$2"; then
		_sh_str "$2"
		_sh_err="$_sh_what index must be a number, '$_sh_s' given"
		return 1
	fi
	_sh_ai=${_sh_r#n} _sh_fn=0
	if [ "$_sh_what" = list ]; then
		_sh_s=${1#l}
		while :; do
			case $_sh_s in
			"$_sh_nl"*) ;;
			*) break ;;
			esac
			_sh_s=${_sh_s#"$_sh_nl"}
			_sh_item=${_sh_s%%"$_sh_nl"*}
			if [ "$_sh_fn" -eq "$_sh_ai" ]; then
				_sh_r=s$_sh_item
				return 0
			fi
			_sh_s=${_sh_s#"$_sh_item"}
			_sh_fn=$((_sh_fn + 1))
		done
	else
		_sh_s=${1#s}
		while [ -n "$_sh_s" ]; do
			_sh_rest=${_sh_s#?}
			if [ "$_sh_fn" -eq "$_sh_ai" ]; then
				_sh_r=s${_sh_s%"$_sh_rest"}
				return 0
			fi
			_sh_s=$_sh_rest
			_sh_fn=$((_sh_fn + 1))
		done
	fi
	_sh_err="index out of bounds (length=$_sh_fn, index=$_sh_ai)"
	return 1
}

_sh_noenv() { # the env function of an operation without env
	:
}

_sh_abspath() { # path -> _sh_s, relative to the working directory of the operation
	case $1 in
	/*) _sh_s=$1 ;;
	*) _sh_s=$_sh_cwd/$1 ;;
	esac
}

_sh_readfile() { # path -> _sh_s (the exact content)
	_sh_s='' _sh_l=''
	while IFS= read -r _sh_l; do
		_sh_s=$_sh_s$_sh_l$_sh_nl
	done <"$1"
	_sh_s=$_sh_s$_sh_l
}

_sh_fn_file() {
	if [ "$#" -ne 1 ]; then
		_sh_err="file() takes one argument, $# given"
		return 1
	fi
	case $1 in
	s*) ;;
	*)
		_sh_str "$1"
		_sh_err="file() expects a string, '$_sh_s' given"
		return 1
		;;
	esac
	_sh_abspath "${1#s}"
	_sh_fp=$_sh_s
	if [ -d "$_sh_fp" ]; then
		_sh_err="opening file(${1#s}): is a directory"
		return 1
	elif [ ! -e "$_sh_fp" ]; then
		_sh_err="opening file(${1#s}): no such file or directory"
		return 1
	elif [ ! -r "$_sh_fp" ]; then
		_sh_err="opening file(${1#s}): permission denied"
		return 1
	fi
	_sh_readfile "$_sh_fp"
	_sh_r=s$_sh_s
}

# glob(): phase "roots" prints the directories to walk, phase "match" filters the walk (paths on
# stdin, "/" written as \001 so that a plain sort gives the lexical walk order).
_sh_awk_glob='
function clean(p,    n, i, seg, k, out) {
	n = split(p, seg, "/"); k = 0
	for (i = 1; i <= n; i++) {
		if (seg[i] == "" || seg[i] == ".") continue
		if (seg[i] == "..") { if (k > 0) k--; continue }
		st[++k] = seg[i]
	}
	out = ""
	for (i = 1; i <= k; i++) out = out "/" st[i]
	return out == "" ? "/" : out
}
function absolute(p) { return clean(substr(p, 1, 1) == "/" ? p : cwd "/" p) }
function root(p,    n, i, seg, out) {
	n = split(p, seg, "/"); out = ""
	for (i = 2; i <= n; i++) { if (seg[i] ~ /[*?[{\\]/) break; out = out "/" seg[i] }
	return out == "" ? "/" : out
}
function lit(c) { return index(".[]()*+?{}|^$\\/", c) ? "\\" c : c }
function close_brace(s, i,    d) {
	d = 0
	for (; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (c == "{") d++
		else if (c == "}") { d--; if (d == 0) return i }
	}
	return 0
}
function segment(s,    out, i, n, c, j, body, neg, d, part, alts) {
	out = ""; n = length(s)
	for (i = 1; i <= n; i++) {
		c = substr(s, i, 1)
		if (c == "*") { while (i < n && substr(s, i + 1, 1) == "*") i++; out = out "[^/]*" }
		else if (c == "?") out = out "[^/]"
		else if (c == "\\" && i < n) { i++; out = out lit(substr(s, i, 1)) }
		else if (c == "[") {
			j = index(substr(s, i + 2), "]")
			if (j == 0) out = out lit(c)
			else {
				j = i + 1 + j; body = substr(s, i + 1, j - i - 1); neg = substr(body, 1, 1)
				if (neg == "!" || neg == "^") out = out "[^/" substr(body, 2) "]"
				else out = out "[" body "]"
				i = j
			}
		} else if (c == "{") {
			j = close_brace(s, i)
			if (j == 0) out = out lit(c)
			else {
				body = substr(s, i + 1, j - i - 1); alts = ""; part = ""; d = 0
				for (k2 = 1; k2 <= length(body); k2++) {
					c = substr(body, k2, 1)
					if (c == "," && d == 0) { alts = alts (alts == "" ? "" : "|") segment(part); part = ""; continue }
					if (c == "{") d++; else if (c == "}") d--
					part = part c
				}
				alts = (alts == "" ? "" : alts "|") segment(part)
				out = out "(" alts ")"; i = j
			}
		} else out = out lit(c)
	}
	return out
}
function regex(p,    n, i, seg, out) {
	n = split(p, seg, "/"); out = ""
	for (i = 1; i <= n; i++) {
		if (seg[i] == "**") { out = out (i == n ? ".*" : "([^/]*/)*"); continue }
		out = out segment(seg[i]) (i < n ? "/" : "")
	}
	return "^" out "$"
}
BEGIN {
	cwd = ENVIRON["_SHOAL_GLOB_CWD"]
	n = split(ENVIRON["_SHOAL_GLOB"], pats, "\n"); ni = 0; ne = 0
	for (i = 1; i <= n; i++) {
		if (substr(pats[i], 1, 1) == "!") exc[++ne] = regex(absolute(substr(pats[i], 2)))
		else { p = absolute(pats[i]); inc[++ni] = regex(p); roots[root(p)] = 1 }
	}
	if (ARGV[1] == "roots") {
		for (r in roots) {
			keep = 1
			for (o in roots) if (o != r && (o == "/" || index(r, o "/") == 1)) keep = 0
			if (keep) print r
		}
		exit
	}
	ARGV[1] = ""
}
{
	for (i = 1; i <= ni; i++) if ($0 ~ inc[i]) break
	if (i > ni || seen[$0]++) next
	for (i = 1; i <= ne; i++) if ($0 ~ exc[i]) next
	gsub(/\//, "\001"); print
}
'

_sh_fn_glob() {
	_sh_gp='' _sh_gi=''
	for _sh_a; do
		_sh_str "$_sh_a"
		case $_sh_s in
		'!'*) ;;
		*) _sh_gi=1 ;;
		esac
		_sh_gp=$_sh_gp${_sh_gp:+$_sh_nl}$_sh_s
	done
	if [ -z "$_sh_gi" ]; then
		_sh_err='glob() needs at least one pattern that is not an exclusion'
		return 1
	fi
	_sh_groots=$(_SHOAL_GLOB=$_sh_gp _SHOAL_GLOB_CWD=$_sh_cwd "$_sh_bb" awk "$_sh_awk_glob" roots) || {
		_sh_err='glob(): cannot translate the patterns'
		return 1
	}
	_sh_s=$(
		set -f
		IFS=$_sh_nl
		for _sh_d in $_sh_groots; do
			"$_sh_bb" find "$_sh_d" -type f 2>/dev/null
		done | _SHOAL_GLOB=$_sh_gp _SHOAL_GLOB_CWD=$_sh_cwd "$_sh_bb" awk "$_sh_awk_glob" match |
			LC_ALL=C "$_sh_bb" sort | "$_sh_bb" tr '\001' /
	)
	_sh_r=l${_sh_s:+$_sh_nl}$_sh_s
}

_sh_output() { # step-id key -> _sh_r (null when the step left no such output)
	if [ -f "$_sh_state/outputs/$1/$2" ]; then
		_sh_readfile "$_sh_state/outputs/$1/$2"
		_sh_r=s$_sh_s
	else
		_sh_r=z
	fi
}

_sh_service() { # name index key -> _sh_r, as the services toolkit published it (null: not there)
	if [ -f "$_sh_state/services/$1/$2/$3" ]; then
		_sh_readfile "$_sh_state/services/$1/$2/$3"
		_sh_r=s$_sh_s
	else
		_sh_r=z
	fi
}

_sh_services() { # name key -> _sh_r, the list over the instances 0, 1, ... (services.<name>.*.<key>)
	_sh_si=0 _sh_sl=l
	while [ -d "$_sh_state/services/$1/$_sh_si" ]; do
		_sh_service "$1" "$_sh_si" "$2"
		_sh_str "$_sh_r"
		_sh_sl=$_sh_sl$_sh_nl$_sh_s
		_sh_si=$((_sh_si + 1))
	done
	_sh_r=$_sh_sl
}

# ------------------------------------------------------------------------------------------------

if [ -z "${_sh_sourced-}" ]; then
	case ${1-} in
	finalize-aborted)
		_sh_finalize
		exit 0
		;;
	*)
		printf 'usage: sh lib.sh finalize-aborted\n' >&2
		exit 155
		;;
	esac
fi
