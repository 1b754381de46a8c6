package pubsub

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	gossip "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("pubsub: closed")
	// ErrTooLarge is returned by Publish for data over the size limit.
	ErrTooLarge = errors.New("pubsub: message too large")
	// ErrBadTopic is returned by Join for an unusable topic name.
	ErrBadTopic = errors.New("pubsub: bad topic name")
	// ErrRejected is returned by Publish when the topic's validator
	// refuses the instance's own message.
	ErrRejected = errors.New("pubsub: message rejected by validator")
	// ErrIgnore may be returned by a Validator to drop a message without
	// counting it against the peer that forwarded it.
	ErrIgnore = errors.New("pubsub: message ignored")
	// ErrReservedTopic is returned by Join for a name the SDK keeps for
	// its own components (see Reserved).
	ErrReservedTopic = errors.New("pubsub: topic name reserved for the SDK")
	// ErrInvalidConfig is wrapped by Open's errors about a Config it
	// cannot use.
	ErrInvalidConfig = errors.New("pubsub: invalid config")
)

// DefaultMaxMessageSize is the largest payload Publish accepts by default.
const DefaultMaxMessageSize = 1 << 20

// Default per-sender budgets on one topic (Config.PeerMessageRate and
// Config.PeerByteRate).
const (
	DefaultPeerMessageRate = 20_000
	DefaultPeerByteRate    = 8 << 20
)

// envelopeOverhead is room on the wire for what GossipSub adds around the
// payload (sender, sequence number, topic, signature and public key).
const envelopeOverhead = 4 << 10

// Config configures Open. Zero values mean defaults; Open copies it.
type Config struct {
	// Host is the libp2p host GossipSub runs on. Required.
	Host host.Host
	// AppID namespaces every topic. Required.
	AppID string
	// MaxMessageSize bounds the payload of one message; default 1 MiB.
	MaxMessageSize int
	// SubscriptionBuffer is how many undelivered messages a subscription
	// holds before GossipSub drops new ones for it; default 4096.
	SubscriptionBuffer int
	// PeerQueue is how many outbound messages are queued per peer before
	// GossipSub drops; default 4096, sized for bursts of 10,000 messages/s.
	PeerQueue int
	// Key signs the instance's messages; it must be the secp256k1 key
	// behind the host's identity. Default: taken from the host.
	Key *ecdsa.PrivateKey
	// Logger receives the reason of each rejected message; nil discards
	// them.
	Logger *slog.Logger
	// Metrics, when set, receives the PubSub's Prometheus metrics from
	// Open until Close.
	Metrics prometheus.Registerer

	// PeerMessageRate bounds how many messages per second one sender may
	// have accepted on one topic, after a burst of one second's worth;
	// default 20,000. The SDK's own topics get four times every budget.
	PeerMessageRate int
	// PeerByteRate bounds how many bytes per second one sender may have
	// accepted on one topic, after a burst of one second's worth (and at
	// least two messages of MaxMessageSize); default 8 MiB.
	PeerByteRate int
	// GraylistAfter is the penalty at which a peer is graylisted: every
	// message over its sender's budget adds one to the sender's penalty,
	// and every malformed envelope one to the penalty of the peer that
	// sent it; default 200.
	GraylistAfter int
	// GraylistHalfLife is how fast a penalty decays; default 10s. A
	// graylisted peer that keeps flooding stays graylisted; one that stops
	// is heard again two half-lives later.
	GraylistHalfLife time.Duration
	// NoPeerLimits turns the per-sender budgets and the graylist off.
	NoPeerLimits bool
}

func (c *Config) setDefaults() error {
	if c.AppID == "" {
		return fmt.Errorf("pubsub: Config.AppID is required: %w", ErrInvalidConfig)
	}
	if c.MaxMessageSize < 0 || c.SubscriptionBuffer < 0 || c.PeerQueue < 0 ||
		c.PeerMessageRate < 0 || c.PeerByteRate < 0 || c.GraylistAfter < 0 || c.GraylistHalfLife < 0 {
		return fmt.Errorf("pubsub: Config sizes, rates and durations must not be negative: %w", ErrInvalidConfig)
	}
	if c.PeerMessageRate == 0 {
		c.PeerMessageRate = DefaultPeerMessageRate
	}
	if c.PeerByteRate == 0 {
		c.PeerByteRate = DefaultPeerByteRate
	}
	if c.GraylistAfter == 0 {
		c.GraylistAfter = 200
	}
	if c.GraylistHalfLife == 0 {
		c.GraylistHalfLife = 10 * time.Second
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.SubscriptionBuffer == 0 {
		c.SubscriptionBuffer = 4096
	}
	if c.PeerQueue == 0 {
		c.PeerQueue = 4096
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Stats counts what crossed the layer since New. All fields are totals.
type Stats struct {
	Published uint64 // messages this instance published
	Delivered uint64 // messages handed to subscribers by Next
	Rejected  uint64 // messages a validator rejected (own and remote)
	// Invalid counts messages refused before any app validator ran: a
	// malformed envelope, a bad signature, or a full validation queue.
	Invalid  uint64
	Ignored  uint64 // messages a validator ignored
	TooLarge uint64 // Publish calls refused for size
	// Throttled counts messages ignored because their sender was over its
	// budget on the topic (Config.PeerMessageRate, Config.PeerByteRate).
	Throttled uint64
	// Graylisted counts the times a peer was graylisted; FromGraylisted
	// the messages dropped unvalidated because their peer was.
	Graylisted     uint64
	FromGraylisted uint64
	// Dropped counts messages lost because a local subscriber's buffer was
	// full when they arrived; DroppedOutbound counts outbound RPCs lost
	// because a peer's queue was full. Both stay 0 when consumers keep up.
	Dropped         uint64
	DroppedOutbound uint64
	// Duplicates counts copies of a message received after its first:
	// the redundancy of GossipSub's mesh, each copy read and dropped.
	Duplicates uint64
}

// PubSub is an instance's GossipSub router, scoped to one DApp. It is safe
// for concurrent use.
type PubSub struct {
	cfg    Config
	host   host.Host
	ps     *gossip.PubSub
	cancel context.CancelFunc
	trace  *tracer
	limits *limiter // nil with Config.NoPeerLimits
	prefix string   // of every full topic name: "/dpaas/<AppID>/"
	key    *ecdsa.PrivateKey
	self   peer.ID
	seq    atomic.Uint64
	ids    senderIDs

	mu     sync.Mutex
	topics map[string]*Topic
	closed bool

	// Stream resets of graylisted peers (cutOff), stopped by Close.
	cutMu     sync.Mutex
	cutClosed bool
	wg        sync.WaitGroup

	published, delivered, rejected, ignored, tooLarge atomic.Uint64
}

// New starts GossipSub on h for the DApp named by cfg.AppID: it is Open
// with cfg.Host set to h.
//
// Deprecated: use Open with Config.Host.
func New(ctx context.Context, h host.Host, cfg Config) (*PubSub, error) {
	cfg.Host = h
	return Open(ctx, cfg)
}

// Open starts GossipSub on cfg.Host for the DApp named by cfg.AppID.
// Close stops it.
func Open(ctx context.Context, cfg Config) (*PubSub, error) {
	h := cfg.Host
	if h == nil {
		return nil, fmt.Errorf("pubsub: nil host: %w", ErrInvalidConfig)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	key := cfg.Key
	if key == nil {
		var err error
		if key, err = signingKey(h.Peerstore().PrivKey(h.ID())); err != nil {
			return nil, err
		}
	}
	if self, err := senderID(key); err != nil || self != h.ID() {
		return nil, fmt.Errorf("pubsub: Config.Key is not the host's key: %w", ErrInvalidConfig)
	}
	// GossipSub lives as long as the PubSub, not as long as the caller's
	// ctx: it is stopped by Close.
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	trace := newTracer()
	// A DApp's mesh is small, and a link lost to a PRUNE (a GRAFT that
	// raced a subscription, a duplicate connection closing) stays down for
	// the whole backoff, refreshed by every GRAFT that arrives meanwhile:
	// GossipSub's default minute can cut a three-instance DApp's relaying
	// for that long. A quarter of it keeps the flood protection (it is
	// above GraftFloodThreshold) and repairs the mesh sooner.
	params := gossip.DefaultGossipSubParams()
	params.PruneBackoff = 15 * time.Second
	p := &PubSub{cfg: cfg, host: h, cancel: cancel, trace: trace, key: key, self: h.ID(),
		prefix: "/dpaas/" + cfg.AppID + "/", topics: make(map[string]*Topic)}
	opts := []gossip.Option{
		gossip.WithGossipSubParams(params),
		// Messages are signed in our own envelope (envelope.go).
		gossip.WithNoAuthor(),
		gossip.WithMessageSignaturePolicy(gossip.StrictNoSign),
		gossip.WithMessageIdFn(messageID),
		gossip.WithMaxMessageSize(cfg.MaxMessageSize + headerLen + envelopeOverhead),
		gossip.WithPeerOutboundQueueSize(cfg.PeerQueue),
		gossip.WithValidateQueueSize(cfg.PeerQueue),
		gossip.WithFloodPublish(true),
		gossip.WithRawTracer(trace),
	}
	if !cfg.NoPeerLimits {
		p.limits = newLimiter(&cfg)
		opts = append(opts, p.scoring(), gossip.WithAppSpecificRpcInspector(p.inspect))
	}
	ps, err := gossip.NewGossipSub(gctx, h, opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("pubsub: start gossipsub: %w", err)
	}
	p.ps = ps
	// Sequence numbers start at the clock so a restarted instance does not
	// repeat them.
	p.seq.Store(uint64(time.Now().UnixNano()))
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(p); err != nil {
			p.cfg.Metrics = nil // not ours to unregister
			p.Close()
			return nil, fmt.Errorf("pubsub: open: register metrics: %w", err)
		}
	}
	return p, nil
}

// messageID names a message by its topic and whole envelope, so only the
// exact same bytes on the same topic count as a duplicate. (A signed
// envelope is bound to its topic; an unsigned one, PublishSigned's, is not,
// and the same payload may go to two topics.)
func messageID(m *pb.Message) string {
	h := sha256.New()
	h.Write([]byte(m.GetTopic()))
	h.Write([]byte{0})
	h.Write(m.Data)
	return string(h.Sum(nil)[:20])
}

func senderID(k *ecdsa.PrivateKey) (peer.ID, error) {
	var ids senderIDs
	return ids.id(ethcrypto.FromECDSAPub(&k.PublicKey))
}

// Stats returns the counters.
func (p *PubSub) Stats() Stats {
	st := Stats{
		Published: p.published.Load(),
		Delivered: p.delivered.Load(),
		Rejected:  p.rejected.Load(),
		Ignored:   p.ignored.Load(),
		TooLarge:  p.tooLarge.Load(),

		Invalid:         p.trace.invalid.Load(),
		Dropped:         p.trace.undeliverable.Load(),
		DroppedOutbound: p.trace.droppedRPCs.Load(),
		Duplicates:      p.trace.duplicates.Load(),
	}
	if l := p.limits; l != nil {
		st.Throttled = l.throttled.Load()
		st.Graylisted = l.graylisted.Load()
		st.FromGraylisted = l.dropped.Load()
	}
	return st
}

// Graylisted lists the peers graylisted now: GossipSub drops whatever they
// send before validating it.
func (p *PubSub) Graylisted() []peer.ID {
	if p.limits == nil {
		return nil
	}
	return p.limits.graylistedPeers()
}

// MaxMessageSize is the largest payload Publish accepts.
func (p *PubSub) MaxMessageSize() int { return p.cfg.MaxMessageSize }

// Join returns the DApp topic called name, joining it on first use. Joining
// a name twice returns the same Topic. Names the SDK keeps for its own
// components (Reserved) are refused with ErrReservedTopic.
func (p *PubSub) Join(name string) (*Topic, error) { return p.join(name, false) }

// join joins name; sys lets the SDK's own components (through
// internal/systopic) join the reserved names.
func (p *PubSub) join(name string, sys bool) (*Topic, error) {
	if name == "" || strings.ContainsAny(name, "\x00\n") {
		return nil, fmt.Errorf("pubsub: join %q: %w", name, ErrBadTopic)
	}
	reserved := Reserved(name)
	if reserved && !sys {
		return nil, fmt.Errorf("pubsub: join %q: %w", name, ErrReservedTopic)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("pubsub: join %q: %w", name, ErrClosed)
	}
	if t, ok := p.topics[name]; ok {
		return t, nil
	}
	full := p.prefix + name
	t := &Topic{ps: p, name: name, full: full, sys: reserved, subs: make(map[*Subscription]struct{})}
	// An application topic's messages are checked in GossipSub's
	// validation workers, which is quickest and keeps a sender's messages
	// nearly in order. The SDK's topics are checked in goroutines of their
	// own (up to sysValidators at once): the store's validator applies each
	// delta and may wait on the disk, which must not occupy the workers
	// that every topic's messages queue for, nor limit replication to one
	// delta per worker at a time.
	vopt := gossip.WithValidatorInline(true)
	if reserved {
		vopt = gossip.WithValidatorConcurrency(sysValidators)
	}
	if err := p.ps.RegisterTopicValidator(full, t.validate, vopt); err != nil {
		return nil, fmt.Errorf("pubsub: join %q: %w", name, err)
	}
	gt, err := p.ps.Join(full)
	if err != nil {
		_ = p.ps.UnregisterTopicValidator(full)
		return nil, fmt.Errorf("pubsub: join %q: %w", name, err)
	}
	t.t = gt
	p.topics[name] = t
	return t, nil
}

// Close leaves every topic, ends every subscription and stops GossipSub.
// It is safe to call more than once; later calls return an error wrapping
// ErrClosed.
func (p *PubSub) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("pubsub: close: %w", ErrClosed)
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.Unregister(p)
	}
	p.closed = true
	topics := make([]*Topic, 0, len(p.topics))
	for _, t := range p.topics {
		topics = append(topics, t)
	}
	p.mu.Unlock()
	var errs []error
	for _, t := range topics {
		if err := t.close(); err != nil {
			errs = append(errs, err)
		}
	}
	p.cancel()
	p.cutMu.Lock()
	p.cutClosed = true
	p.cutMu.Unlock()
	p.wg.Wait()
	return errors.Join(errs...)
}

// Validator decides whether a message may be delivered and forwarded. A nil
// error accepts it; ErrIgnore drops it quietly; any other error rejects it
// and penalises the peer that sent it.
type Validator func(ctx context.Context, m *Message) error

// Message is one delivered message.
type Message struct {
	From  peer.ID // the signed author of the message
	Data  []byte
	Topic string // the topic's name without the AppID namespace
	// ReceivedFrom is the neighbour that handed the message over; it
	// equals the instance's own ID for its own messages.
	ReceivedFrom peer.ID
	// Decoded is what the topic's Authenticator or validator stored
	// there, nil if nothing: a validator that parses the message can hand
	// the parsed form to the subscribers, which then need not parse it
	// again. Subscribers of one topic share it: they must not modify it.
	Decoded any
}

// Topic is one DApp topic. It is safe for concurrent use.
type Topic struct {
	ps   *PubSub
	name string
	full string
	sys  bool // reserved for the SDK
	t    *gossip.Topic
	user atomic.Pointer[Validator] // the app's validator, if any
	auth atomic.Pointer[Authenticator]

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Name returns the topic's name as given to Join.
func (t *Topic) Name() string { return t.name }

// Publish signs data and sends it to every subscriber of the topic,
// including the instance's own. It keeps no reference to data. It refuses
// data over the size limit with ErrTooLarge and data the topic's validator
// rejects with ErrRejected.
func (t *Topic) Publish(ctx context.Context, data []byte) error {
	if err := t.canPublish(len(data)); err != nil {
		return err
	}
	env, err := seal(t.ps.key, t.full, t.ps.seq.Add(1), data)
	if err != nil {
		return fmt.Errorf("pubsub: publish to %q: %w", t.name, err)
	}
	// The envelope is a fresh copy, so GossipSub, which signs nothing but
	// sends after Publish returns, never sees the caller's buffer. The
	// decoded message rides along so the instance does not check its own
	// signature.
	own := &Message{From: t.ps.self, Data: env[headerLen:], Topic: t.name, ReceivedFrom: t.ps.self}
	return t.send(ctx, env, own)
}

// canPublish refuses a payload of n bytes over the size limit, or on a
// closed topic.
func (t *Topic) canPublish(n int) error {
	if max := t.ps.cfg.MaxMessageSize; n > max {
		t.ps.tooLarge.Add(1)
		return fmt.Errorf("pubsub: publish to %q: %d bytes, limit %d: %w", t.name, n, max, ErrTooLarge)
	}
	if t.isClosed() {
		return fmt.Errorf("pubsub: publish to %q: %w", t.name, ErrClosed)
	}
	return nil
}

// send hands an envelope to GossipSub, with own, the message as this
// instance's validator and subscribers see it.
func (t *Topic) send(ctx context.Context, env []byte, own *Message) error {
	if err := t.t.Publish(ctx, env, gossip.WithValidatorData(own)); err != nil {
		var verr gossip.ValidationError
		if errors.As(err, &verr) {
			return fmt.Errorf("pubsub: publish to %q: %w: %s", t.name, ErrRejected, verr.Reason)
		}
		if t.isClosed() {
			return fmt.Errorf("pubsub: publish to %q: %w", t.name, ErrClosed)
		}
		return fmt.Errorf("pubsub: publish to %q: %w", t.name, err)
	}
	t.ps.published.Add(1)
	return nil
}

// Authenticator recovers who signed a payload that carries its own
// signature: it returns the signer's secp256k1 public key, 65 bytes
// uncompressed (as go-ethereum's crypto.Ecrecover gives it), and, if it
// parsed the payload to do so, the parsed form, which the topic's
// validator and subscribers find in Message.Decoded. It runs in
// GossipSub's validation, concurrently, on messages from the network.
type Authenticator func(payload []byte) (signer []byte, decoded any, err error)

// SetAuthenticator lets the topic carry payloads that are signed by their
// sender already (PublishSigned): a receiver has a recover the signer and
// checks no second signature. A topic has at most one authenticator;
// without one, such messages are refused.
func (t *Topic) SetAuthenticator(a Authenticator) error {
	if a == nil {
		return errors.New("pubsub: nil authenticator")
	}
	if t.isClosed() {
		return fmt.Errorf("pubsub: set authenticator on %q: %w", t.name, ErrClosed)
	}
	if !t.auth.CompareAndSwap(nil, &a) {
		return fmt.Errorf("pubsub: set authenticator on %q: topic already has one", t.name)
	}
	return nil
}

// PublishSigned is Publish for a payload that carries its own signature
// by this instance's key, which the topic's Authenticator recovers: the
// envelope is not signed again, so every receiver checks one signature
// instead of two. The same payload published twice is one message (its
// envelope is the same). It returns ErrRejected, and sends nothing, if
// the topic has no authenticator or it does not find this instance's
// signature.
func (t *Topic) PublishSigned(ctx context.Context, data []byte) error {
	if err := t.canPublish(len(data)); err != nil {
		return err
	}
	auth := t.auth.Load()
	if auth == nil {
		return fmt.Errorf("pubsub: publish signed to %q: the topic has no authenticator: %w", t.name, ErrRejected)
	}
	env := sealSelfSigned(ethcrypto.PubkeyToAddress(t.ps.key.PublicKey), data)
	// Checked here as every receiver will: a payload signed by another
	// key would be refused by all of them, and held against this instance.
	_, payload, decoded, err := openSelfSigned(*auth, env)
	if err != nil {
		return fmt.Errorf("pubsub: publish signed to %q: %w: %v", t.name, ErrRejected, err)
	}
	own := &Message{From: t.ps.self, Data: payload, Topic: t.name, ReceivedFrom: t.ps.self, Decoded: decoded}
	return t.send(ctx, env, own)
}

// validate is the GossipSub validator of every topic: it opens the
// envelope, then runs the app's validator if one is set. A message is
// delivered and forwarded only when both accept it.
func (t *Topic) validate(ctx context.Context, from peer.ID, gm *gossip.Message) gossip.ValidationResult {
	ps := t.ps
	m, local := gm.ValidatorData.(*Message)
	// Only Publish sets validator data, and only on messages it made: a
	// message from the network arrives without it, from another peer.
	switch {
	case local && gm.ReceivedFrom == ps.self:
	case len(gm.Data) > 0 && gm.Data[0] == selfSignedVersion:
		var ok bool
		if m, ok = t.openSelfSigned(from, gm); !ok {
			return gossip.ValidationReject
		}
		if m == nil {
			return gossip.ValidationIgnore
		}
	case ps.ids.sentDirectly(gm.Data, gm.ReceivedFrom):
		// The budget is checked before anything else is done for the
		// message: a flood costs a map lookup per message.
		if !t.withinBudget(gm.ReceivedFrom, len(gm.Data)) {
			return gossip.ValidationIgnore
		}
		m = &Message{From: gm.ReceivedFrom, Data: gm.Data[headerLen:], Topic: t.name, ReceivedFrom: gm.ReceivedFrom}
		gm.ValidatorData = m
	default:
		pub, payload, err := open(t.full, gm.Data)
		var sender peer.ID
		if err == nil {
			sender, err = ps.ids.id(pub)
		}
		if err != nil {
			ps.trace.invalid.Add(1)
			if ps.limits != nil && (len(gm.Data) < headerLen || gm.Data[0] != envelopeVersion) {
				// No honest peer forwards a malformed envelope, so this
				// one is the forwarder's own doing. (A bad signature may
				// be relayed by an honest peer: one that had the envelope
				// from its author, whom the connection authenticated.)
				ps.limits.blame(gm.ReceivedFrom, 1)
			}
			ps.cfg.Logger.Debug("pubsub: invalid message", "topic", t.name, "via", from, "err", err)
			return gossip.ValidationReject
		}
		// A relayed message is charged to its author, not to the
		// neighbour that relayed it: honest relays are not blamed for a
		// flood they pass on before their own budget stops it.
		if !t.withinBudget(sender, len(gm.Data)) {
			return gossip.ValidationIgnore
		}
		m = &Message{From: sender, Data: payload, Topic: t.name, ReceivedFrom: gm.ReceivedFrom}
		gm.ValidatorData = m
	}
	v := t.user.Load()
	if v == nil {
		return gossip.ValidationAccept
	}
	switch err := (*v)(ctx, m); {
	case err == nil:
		return gossip.ValidationAccept
	case errors.Is(err, ErrIgnore):
		ps.ignored.Add(1)
		return gossip.ValidationIgnore
	default:
		ps.rejected.Add(1)
		ps.cfg.Logger.Debug("pubsub: message rejected", "topic", t.name, "from", m.From, "via", from, "err", err)
		return gossip.ValidationReject
	}
}

// openSelfSigned authenticates a message in an unsigned envelope
// (PublishSigned) and returns it, or nil if it is over its sender's
// budget; ok is false if it is refused. A neighbour that hands over such
// a message unauthenticated is blamed: every receiver authenticates it
// before passing it on, so no honest one relays a forgery.
func (t *Topic) openSelfSigned(from peer.ID, gm *gossip.Message) (m *Message, ok bool) {
	ps := t.ps
	// From its sender itself, the connection proves who it is, and the
	// budget is checked first: a flood costs a map lookup per message.
	direct := ps.ids.names(gm.Data, gm.ReceivedFrom)
	if direct && !t.withinBudget(gm.ReceivedFrom, len(gm.Data)) {
		return nil, true
	}
	var (
		pub, payload []byte
		decoded      any
		sender       peer.ID
		err          = fmt.Errorf("%w: the topic takes no unsigned envelopes", errEnvelope)
	)
	if auth := t.auth.Load(); auth != nil {
		pub, payload, decoded, err = openSelfSigned(*auth, gm.Data)
	}
	if err == nil {
		sender, err = ps.ids.id(pub)
	}
	if err != nil {
		ps.trace.invalid.Add(1)
		if ps.limits != nil {
			ps.limits.blame(gm.ReceivedFrom, 1)
		}
		ps.cfg.Logger.Debug("pubsub: invalid message", "topic", t.name, "via", from, "err", err)
		return nil, false
	}
	if !direct && !t.withinBudget(sender, len(gm.Data)) {
		return nil, true
	}
	m = &Message{From: sender, Data: payload, Topic: t.name, ReceivedFrom: gm.ReceivedFrom, Decoded: decoded}
	gm.ValidatorData = m
	return m, true
}

// withinBudget charges a message of size bytes by sender to its budget on
// the topic and reports whether the budget allowed it.
func (t *Topic) withinBudget(sender peer.ID, size int) bool {
	l := t.ps.limits
	if l == nil || l.allow(sender, t.full, size, t.sys) {
		return true
	}
	l.throttled.Add(1)
	t.ps.cfg.Logger.Debug("pubsub: sender over budget", "topic", t.name, "from", sender)
	return false
}

// Peers lists the connected peers subscribed to the topic.
func (t *Topic) Peers() []peer.ID { return t.t.ListPeers() }

// MeshPeers lists the topic's peers that this instance relays messages to
// and from directly (its GossipSub mesh); only a subscribed instance has a
// mesh. The instance's own messages go to every peer in Peers, but a
// message it relays for others goes to its mesh only, and a peer joins the
// mesh at the next GossipSub heartbeat (about a second) after it
// subscribes. Wait for MeshPeers when relaying matters.
func (t *Topic) MeshPeers() []peer.ID {
	var out []peer.ID
	for _, p := range t.t.ListPeers() {
		if t.ps.trace.inMesh(t.full, p) {
			out = append(out, p)
		}
	}
	return out
}

// SetValidator installs v as the topic's validator and returns a function
// that removes it. A topic has at most one validator; it runs on every
// message, the instance's own included, after the sender's signature has
// been checked.
func (t *Topic) SetValidator(v Validator) (unregister func(), err error) {
	if v == nil {
		return nil, errors.New("pubsub: nil validator")
	}
	if t.isClosed() {
		return nil, fmt.Errorf("pubsub: set validator on %q: %w", t.name, ErrClosed)
	}
	pv := &v
	if !t.user.CompareAndSwap(nil, pv) {
		return nil, fmt.Errorf("pubsub: set validator on %q: topic already has one", t.name)
	}
	return func() { t.user.CompareAndSwap(pv, nil) }, nil
}

// SubscribeOption tunes one subscription.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct{ ctx context.Context }

// Until ends the subscription when ctx is done, as if Close were called.
func Until(ctx context.Context) SubscribeOption {
	return func(o *subscribeOptions) { o.ctx = ctx }
}

// Subscribe starts receiving the topic's messages.
func (t *Topic) Subscribe(opts ...SubscribeOption) (*Subscription, error) {
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("pubsub: subscribe to %q: %w", t.name, ErrClosed)
	}
	gs, err := t.t.Subscribe(gossip.WithBufferSize(t.ps.cfg.SubscriptionBuffer))
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscribe to %q: %w", t.name, err)
	}
	s := &Subscription{topic: t, s: gs}
	t.subs[s] = struct{}{}
	if o.ctx != nil {
		s.stop = context.AfterFunc(o.ctx, s.Close)
	}
	return s, nil
}

func (t *Topic) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

func (t *Topic) close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := make([]*Subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
	_ = t.ps.ps.UnregisterTopicValidator(t.full)
	if err := t.t.Close(); err != nil {
		return fmt.Errorf("pubsub: leave %q: %w", t.name, err)
	}
	return nil
}

// Subscription receives one topic's messages. Next may be called from one
// goroutine at a time; Close from any.
type Subscription struct {
	topic  *Topic
	s      *gossip.Subscription
	stop   func() bool
	closed atomic.Bool
}

// Next blocks until the next message arrives, ctx ends, or the subscription
// (or its PubSub) is closed, in which case the error wraps ErrClosed.
func (s *Subscription) Next(ctx context.Context) (*Message, error) {
	gm, err := s.s.Next(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pubsub: next on %q: %w", s.topic.name, ctx.Err())
		}
		return nil, fmt.Errorf("pubsub: next on %q: %w", s.topic.name, ErrClosed)
	}
	m, ok := gm.ValidatorData.(*Message)
	if !ok {
		// Every message passes the topic validator, which sets this.
		return nil, fmt.Errorf("pubsub: next on %q: %w", s.topic.name, errEnvelope)
	}
	s.topic.ps.delivered.Add(1)
	return m, nil
}

// Close ends the subscription; a blocked Next returns ErrClosed. It is
// safe to call more than once.
func (s *Subscription) Close() {
	if s.closed.Swap(true) {
		return
	}
	if s.stop != nil {
		s.stop()
	}
	s.s.Cancel()
	t := s.topic
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}
