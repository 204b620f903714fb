// Curator's EnsembleTracker against a running ensemble: connect to the one member named on
// the command line, then print the connection string Curator keeps once it has read the
// membership in /zookeeper/config (or what it has after 20 s).
//
//   java EnsembleTrackerCheck 127.0.0.1:2181 3
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryNTimes;

public class EnsembleTrackerCheck {
    public static void main(String[] args) throws Exception {
        String first = args[0];
        int members = Integer.parseInt(args[1]);
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(first)
                .retryPolicy(new RetryNTimes(20, 250))
                .ensembleTracker(true)
                .build();
        client.start();
        try {
            if (!client.blockUntilConnected(20, TimeUnit.SECONDS)) {
                System.out.println("not connected");
                return;
            }
            String current = first;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (System.nanoTime() < deadline) {
                current = client.getZookeeperClient().getCurrentConnectionString();
                if (current.split(",").length >= members) {
                    break;
                }
                Thread.sleep(100); // polling interval
            }
            System.out.println(current);
        } finally {
            client.close();
        }
    }
}
