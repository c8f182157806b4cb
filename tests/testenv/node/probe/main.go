// probe: the real node's test program, a static binary in a one-layer image (no registry is reachable,
// so no busybox or curl image can be pulled). Each subcommand checks one thing a user's pod relies on.
//
//	probe exit CODE MESSAGE  print MESSAGE on stdout and stderr, write it to /dev/termination-log, exit CODE
//	probe whoami             ask the API server who we are, through the `kubernetes` Service with the
//	                         pod's ServiceAccount token (in-cluster configuration, as client libraries do)
//	probe serve PORT         answer HTTP GETs with "hello from HOSTNAME"
//	probe get URL            print the body of an HTTP GET
//	probe deny PORT DIR      an admission webhook on HTTPS (DIR/tls.crt, DIR/tls.key) that denies every
//	                         request with the message "denied by the probe webhook"
//
// A failure is written to /dev/termination-log and exits 1, so the test reads the reason from the API.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

const sa = "/var/run/secrets/kubernetes.io/serviceaccount"

func fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, msg)
	_ = os.WriteFile("/dev/termination-log", []byte(msg), 0o644)
	os.Exit(1)
}

func whoami() {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		fail("KUBERNETES_SERVICE_HOST/PORT are not set")
	}
	token, err := os.ReadFile(sa + "/token")
	if err != nil {
		fail("read token: %v", err)
	}
	ca, err := os.ReadFile(sa + "/ca.crt")
	if err != nil {
		fail("read ca.crt: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		fail("ca.crt holds no certificate")
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	url := "https://" + net.JoinHostPort(host, port) + "/apis/authentication.k8s.io/v1/selfsubjectreviews"
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		fail("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		fail("POST %s: %s: %s", url, resp.Status, raw)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(raw, &review); err != nil {
		fail("decode SelfSubjectReview: %v", err)
	}
	msg := fmt.Sprintf("%s via %s", review.Status.UserInfo.Username, net.JoinHostPort(host, port))
	fmt.Println(msg)
	_ = os.WriteFile("/dev/termination-log", []byte(msg), 0o644)
}

// deny answers an AdmissionReview with allowed: false.
func deny(w http.ResponseWriter, r *http.Request) {
	var review struct {
		APIVersion string `json:"apiVersion"`
		Request    struct {
			UID string `json:"uid"`
		} `json:"request"`
	}
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"apiVersion": review.APIVersion,
		"kind":       "AdmissionReview",
		"response": map[string]any{
			"uid":     review.Request.UID,
			"allowed": false,
			"status":  map[string]any{"code": 403, "message": "denied by the probe webhook"},
		},
	})
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe exit|whoami|serve|get ...")
	}
	switch args := os.Args[2:]; os.Args[1] {
	case "exit":
		if len(args) != 2 {
			fail("usage: probe exit CODE MESSAGE")
		}
		code, err := strconv.Atoi(args[0])
		if err != nil {
			fail("exit code %q: %v", args[0], err)
		}
		fmt.Println("stdout: " + args[1])
		fmt.Fprintln(os.Stderr, "stderr: "+args[1])
		if err := os.WriteFile("/dev/termination-log", []byte(args[1]), 0o644); err != nil {
			fail("write /dev/termination-log: %v", err)
		}
		os.Exit(code)
	case "whoami":
		whoami()
	case "serve":
		if len(args) != 1 {
			fail("usage: probe serve PORT")
		}
		name, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "hello from %s\n", name) })
		fail("serve: %v", http.ListenAndServe(":"+args[0], nil))
	case "get":
		if len(args) != 1 {
			fail("usage: probe get URL")
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(args[0])
		if err != nil {
			fail("GET %s: %v", args[0], err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			fail("GET %s: %s", args[0], resp.Status)
		}
		os.Stdout.Write(raw)
		_ = os.WriteFile("/dev/termination-log", raw, 0o644)
	case "deny":
		if len(args) != 2 {
			fail("usage: probe deny PORT DIR")
		}
		http.HandleFunc("/", deny)
		fail("deny: %v", http.ListenAndServeTLS(":"+args[0], args[1]+"/tls.crt", args[1]+"/tls.key", nil))
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
}
