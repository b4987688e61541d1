package amml.minihdfs;

import java.io.BufferedReader;
import java.io.File;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.hdfs.server.namenode.NameNode;
import org.apache.hadoop.hdfs.server.namenode.NameNodeAdapter;

/**
 * Test-only launcher: a MiniDFSCluster (1 NameNode, 1 DataNode, WebHDFS on) driven over stdin/stdout.
 *
 * <p>System properties: minihdfs.baseDir (required), minihdfs.httpPort, minihdfs.rpcPort (0 = ephemeral),
 * minihdfs.format (default true), minihdfs.deleteOnExit (a directory to delete recursively after shutdown).
 * Hadoop logs go to stderr; stdout carries only protocol lines.
 *
 * <p>Protocol: after start-up it prints {@code READY <httpPort> <rpcPort>} (or {@code FAILED <reason>} and exits 1).
 * Then it reads one command per line on stdin and answers one line, {@code OK <detail>} or {@code ERR <reason>}:
 * {@code ping}, {@code stop} (shut the NameNode down: WebHDFS and RPC ports closed), {@code start} (restart the
 * NameNode on the same ports and wait until it is active and out of safe mode), {@code safemode enter|leave|get},
 * {@code exit}. End of stdin (the parent closed the pipe or died) shuts the cluster down and exits.
 */
public final class MiniHdfs {
  private MiniHdfs() {}

  public static void main(String[] args) throws Exception {
    PrintStream ctl = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
    System.setOut(System.err); // anything Hadoop prints goes to the log, never into the protocol

    String baseDir = System.getProperty("minihdfs.baseDir");
    if (baseDir == null) {
      ctl.println("FAILED minihdfs.baseDir is not set");
      System.exit(1);
    }
    File base = new File(baseDir).getAbsoluteFile();
    int http = Integer.getInteger("minihdfs.httpPort", 0);
    int rpc = Integer.getInteger("minihdfs.rpcPort", 0);
    boolean format = Boolean.parseBoolean(System.getProperty("minihdfs.format", "true"));

    Configuration conf = new HdfsConfiguration();
    conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, base.getPath());
    conf.set("hadoop.tmp.dir", new File(base, "tmp").getPath());
    conf.setBoolean("dfs.webhdfs.enabled", true);
    conf.setBoolean("dfs.permissions.enabled", false); // any WebHDFS user.name may write anywhere
    conf.setLong("dfs.namenode.fs-limits.min-block-size", 0L);
    conf.setLong("dfs.blocksize", 16L * 1024 * 1024);
    // Lean on 2 cores: few handler threads, no background scanners.
    conf.setInt("dfs.namenode.handler.count", 4);
    conf.setInt("dfs.namenode.service.handler.count", 2);
    conf.setInt("dfs.datanode.handler.count", 2);
    conf.setInt("dfs.datanode.directoryscan.interval", -1);
    conf.setLong("dfs.block.scanner.volume.bytes.per.second", 0L);
    // Close idle IPC client connections after 1 s (default 10 s). The DataNode's WebHDFS handler talks to the
    // NameNode through a DFSClient; without this, the first WebHDFS call after a "stop"/"start" of the NameNode
    // reuses a dead cached connection and fails with java.io.EOFException.
    conf.setInt("ipc.client.connection.maxidletime", 1000);
    // DataNode heartbeats every second (default 3 s): a restarted NameNode sees the DataNode sooner.
    conf.setLong("dfs.heartbeat.interval", 1L);
    String me = System.getProperty("user.name");
    conf.set("hadoop.proxyuser." + me + ".hosts", "*");
    conf.set("hadoop.proxyuser." + me + ".groups", "*");

    MiniDFSCluster cluster;
    try {
      cluster = new MiniDFSCluster.Builder(conf)
          .nameNodePort(rpc)
          .nameNodeHttpPort(http)
          .numDataNodes(1)
          .format(format)
          .build();
      cluster.waitActive();
      waitOutOfSafeMode(cluster);
    } catch (Throwable t) {
      t.printStackTrace();
      ctl.println("FAILED " + oneLine(t));
      System.exit(1);
      return;
    }
    NameNode nn = cluster.getNameNode();
    int httpPort = nn.getHttpAddress().getPort();
    int rpcPort = cluster.getNameNodePort();
    System.err.println("MiniHdfs READY http=127.0.0.1:" + httpPort + " rpc=127.0.0.1:" + rpcPort);
    ctl.println("READY " + httpPort + " " + rpcPort);

    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    boolean running = true;
    while (running && (line = in.readLine()) != null) {
      String cmd = line.trim();
      if (cmd.isEmpty()) {
        continue;
      }
      System.err.println("MiniHdfs command: " + cmd);
      try {
        switch (cmd) {
          case "ping":
            ctl.println("OK pong");
            break;
          case "stop":
            cluster.shutdownNameNode(0);
            ctl.println("OK stopped");
            break;
          case "start":
            cluster.restartNameNode(0, true);
            cluster.waitActive();
            waitOutOfSafeMode(cluster);
            ctl.println("OK started");
            break;
          case "safemode enter":
            NameNodeAdapter.enterSafeMode(cluster.getNameNode(), false);
            ctl.println("OK " + safeMode(cluster));
            break;
          case "safemode leave":
            NameNodeAdapter.leaveSafeMode(cluster.getNameNode());
            ctl.println("OK " + safeMode(cluster));
            break;
          case "safemode get":
            ctl.println("OK " + safeMode(cluster));
            break;
          case "exit":
            running = false;
            break;
          default:
            ctl.println("ERR unknown command: " + cmd);
        }
      } catch (Throwable t) {
        t.printStackTrace();
        ctl.println("ERR " + oneLine(t));
      }
    }
    System.err.println("MiniHdfs shutting down");
    try {
      cluster.shutdown(true);
    } catch (Throwable t) {
      t.printStackTrace();
    }
    // Also remove the fixture's temp dir (logs included): covers a parent that died without cleaning up.
    String deleteDir = System.getProperty("minihdfs.deleteOnExit");
    if (deleteDir != null && !deleteDir.isEmpty()) {
      deleteTree(new File(deleteDir));
    }
    ctl.println("OK bye");
    System.exit(0);
  }

  private static void deleteTree(File file) {
    File[] children = file.isDirectory() && !Files.isSymbolicLink(file.toPath()) ? file.listFiles() : null;
    if (children != null) {
      for (File child : children) {
        deleteTree(child);
      }
    }
    if (!file.delete() && file.exists()) {
      System.err.println("MiniHdfs: could not delete " + file);
    }
  }

  private static String safeMode(MiniDFSCluster cluster) {
    return cluster.getNameNode().isInSafeMode() ? "ON" : "OFF";
  }

  private static void waitOutOfSafeMode(MiniDFSCluster cluster) throws InterruptedException {
    long deadline = System.currentTimeMillis() + 60_000L;
    while (cluster.getNameNode().isInSafeMode()) {
      if (System.currentTimeMillis() > deadline) {
        throw new IllegalStateException("NameNode still in safe mode after 60 s");
      }
      Thread.sleep(100);
    }
  }

  private static String oneLine(Throwable t) {
    return String.valueOf(t).replace('\r', ' ').replace('\n', ' ');
  }
}
